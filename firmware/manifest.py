# The board image (micropython-lib manifest style): what goes onto the board's flash.
# Read by tools/atm_tools/image.py (`./atm flash`, the simulated board and the emulated RP2040).
# ruff: noqa: F821
# pyright: reportUndefinedVariable=false

# The firmware's modules, at the filesystem root (main.py stays source: MicroPython runs it at boot).
module("main.py")
module("hwconfig.py")
module("layout.py")
module("app.py")
module("dispenser.py")
module("journal.py")
module("mech.py")
module("security.py")
module("store.py")

# The wire protocol shared with the host, as the package lib/atm_wire.
package("atm_wire", base_path="../protocol")
