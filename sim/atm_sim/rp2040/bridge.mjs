// The emulated RP2040 of the HIL rig: rp2040js 1.4.1 running the shared MicroPython UF2 with the
// board image, driven in lockstep slices of emulated time by atm_sim.rp2040.board (Python).
//
// Protocol: one JSON object per line on stdin (a request), one per line on stdout (its answer).
// Everything the chip does happens inside a request; between requests emulated time stands still.
//
//   boot  {cause, uid}       power on (cause: 0 power-on, 1 watchdog timer; uid: 8 bytes, hex)
//   off   {}                 power off: the chip is gone, the flash array is kept
//   load  {uf2, fs}          write the UF2 and a littlefs image into the (kept) flash array
//   run   {ns, rx, in, adc}  run `ns` of emulated time: rx = hex bytes arriving on UART0 RX (paced at
//                            the UART's line rate), in = input pin levels (bit mask), adc = ADC0..3
//                            counts (12 bit). Answer: t, tx (hex, paced), out [[ns, pin, level]],
//                            rd (bit mask of pins the firmware sampled, see below), ev, cdc (text)
//   arm   {kind, k}          power cut at the k-th 'flash' erase/program or 'pin' change from now
//   disarm, hang, stats, dump {path}, flashtime {mode}; run's optional cdc = hex bytes for the USB REPL
//   prof  {every}            sampling profiler: every `every` executed cycles the PC and exception
//                            number are counted (0 stops); answers the counts since the last call
//
// Workarounds of rp2040js 1.4.1 gaps (see docs/emulator.md):
// - UART: a real 32-byte TX FIFO drained at the line rate (rp2040js transmits at once and raises the TX
//   interrupt on every check, which makes MicroPython's handler spin); RX bytes arrive at the line rate
//   and are lost when the 32-byte RX FIFO is full (overrun), as on the chip.
// - Flash: the SSI does not write, so the bootrom's flash_range_erase/flash_range_program entry points
//   are intercepted and applied to the flash array (NOR: programming only clears bits), and the
//   emulated clock is advanced by the part's erase/program time while the core does nothing (the rp2
//   port runs them with interrupts off: UART bytes arriving meanwhile pile up in the RX FIFO).
// - A pin driven as an output reads back its own level (rp2040js reads the external level only).
// - The flash's unique id (command 0x4B through the SSI, read by pico_get_unique_board_id, i.e.
//   machine.unique_id()) answers the board's id instead of the stub's zeros.
// - A watchdog trip or forced reset ends the run with ev "wdt"/"reset": the caller powers the chip up
//   again with the flash kept and the watchdog reason register set, so machine.reset_cause() is WDT.
import fs from 'fs';
import readline from 'readline';
import { Simulator, USBCDC } from 'rp2040js';

const XIP_BASE = 0x10000000;
const FS_OFFSET = 0xa0000;
const FLASH_SIZE = 2 * 1024 * 1024;
const CYCLE_NS = 8; // 125 MHz
const UART_FIFO = 32;
const TX_TRIGGER = 16; // PL011 default TX interrupt level (1/2 full)
// W25Q16-class part: sector (4 KiB) erase 45 ms typ / 400 ms max, page (256 B) program 0.7 / 3 ms.
const FLASH_TIMES = {
  typ: { eraseNs: 45e6, pageNs: 0.7e6 },
  max: { eraseNs: 400e6, pageNs: 3e6 },
  zero: { eraseNs: 0, pageNs: 0 },
};

const errlog = (s) => process.stderr.write(`[bridge] ${s}\n`);
const quietLogger = { debug() {}, info() {}, warn() {}, error: (c, m) => errlog(`${c}: ${m}`) };

const bootromWords = await (async () => {
  const dir = process.env.ATM_RP2040_DIR;
  if (!dir) throw new Error('ATM_RP2040_DIR not set (the shared rp2040 folder with bootrom.mjs)');
  return (await import(`${dir}/bootrom.mjs`)).bootromB1;
})();
const rom8 = new Uint8Array(bootromWords.buffer);
const rom16 = (a) => rom8[a] | (rom8[a + 1] << 8);
function romFunc(code) {
  const tag = code.charCodeAt(0) | (code.charCodeAt(1) << 8);
  for (let p = rom16(0x14); ; p += 4) {
    const c = rom16(p);
    if (c === 0) throw new Error(`bootrom has no function ${code}`);
    if (c === tag) return rom16(p + 2) & ~1;
  }
}
const ROM_ERASE = romFunc('RE');
const ROM_PROGRAM = romFunc('RP');

// ----- state that outlives a power cycle --------------------------------------------------------
const flashKeep = new Uint8Array(FLASH_SIZE).fill(0xff);
let flashTimes = FLASH_TIMES.typ;
const stats = {
  erases: 0, erasedBytes: 0, programs: 0, programmedBytes: 0, flashNs: 0,
  rxBytes: 0, rxOverruns: 0, rxDuringFlash: 0, txBytes: 0, boots: 0, wdtTrips: 0,
};

// ----- the chip (one per power-up) ----------------------------------------------------------------
let sim = null;
let mcu = null;
let cdc = null;
let cdcOut = '';
let hung = false;
let armKind = '';
let armLeft = 0;
let event = ''; // set inside a slice: stops it
let outs = []; // [ns, pin, level] output changes of this slice
let readMask = 0; // pins whose level the firmware sampled in this slice
let txOut = []; // bytes put on the wire this slice
const rxLine = []; // bytes on their way to RX, one per byte time
const cdcIn = []; // bytes from the USB host (the REPL) waiting for room in the CDC FIFO
const txFifo = [];
let byteNs = 1e10 / 115200;
let rxAlarm = null;
let txAlarm = null;
let rxPending = false; // rp2040js alarms do not clear `scheduled` when they fire
let txPending = false;
let busyCycles = 0; // cycles the core executed (not waiting for an interrupt)
// Sampling profiler (op 'prof'): every `profEvery` executed cycles, the PC and the exception number.
let profEvery = 0;
let profLeft = 0;
let profPc = new Map();
let profIrq = new Map();
let profSamples = 0;

function now() {
  return sim.clock.nanos;
}

function uartSetup(u) {
  // rp2040js 1.4.1 re-raises TXINTR on every check: keep only what the hardware latched.
  u.checkInterrupts = function () {
    this.rp2040.setInterrupt(this.irq, !!(this.interruptStatus & this.interruptMask));
  };
  const origRead = u.readUint32.bind(u);
  const origWrite = u.writeUint32.bind(u);
  u.readUint32 = function (offset) {
    if (offset === 0x18) {
      // UARTFR: RX flags from rp2040js, TX flags from our FIFO (TXFE 7, TXFF 5, BUSY 3)
      const rx = origRead(offset) & ((1 << 6) | (1 << 4));
      const n = txFifo.length;
      return rx | (n === 0 ? 1 << 7 : 1 << 3) | (n >= UART_FIFO ? 1 << 5 : 0);
    }
    return origRead(offset);
  };
  u.writeUint32 = function (offset, value) {
    if (offset !== 0) return origWrite(offset, value);
    if (txFifo.length < UART_FIFO) txFifo.push(value & 0xff);
    if (txFifo.length > TX_TRIGGER) this.interruptStatus &= ~(1 << 5);
    this.checkInterrupts();
    if (!txPending) {
      txPending = true;
      txAlarm.schedule(byteNs);
    }
  };
  u.onBaudRateChange = (baud) => {
    if (baud > 0) byteNs = 1e10 / baud; // 8N1: 10 bit times per byte
  };
}

function txDrain() {
  const u = mcu.uart[0];
  txPending = false;
  if (txFifo.length) {
    txOut.push(txFifo.shift());
    stats.txBytes++;
  }
  if (txFifo.length <= TX_TRIGGER) {
    u.interruptStatus |= 1 << 5;
    u.checkInterrupts();
  }
  if (txFifo.length) {
    txPending = true;
    txAlarm.schedule(byteNs);
  }
}

function rxArrive() {
  // One byte reaches the end of its stop bit: into the RX FIFO, or lost when the FIFO is full.
  const u = mcu.uart[0];
  rxPending = false;
  const b = rxLine.shift();
  stats.rxBytes++;
  if (u.rxFIFO.full) stats.rxOverruns++;
  else u.feedByte(b);
  if (rxLine.length) {
    rxPending = true;
    rxAlarm.schedule(byteNs);
  }
}

let uid = Buffer.from('e66038b7134f2a2f', 'hex');

function ssiSetup(ssi) {
  // pico-sdk's flash_do_cmd clocks the command out byte by byte through DR0 and reads one byte back
  // per byte written; for RUID (0x4B, 4 dummy bytes) bytes 5..12 are the id.
  let pos = -1;
  let readPos = 0;
  const origRead = ssi.readUint32.bind(ssi);
  const origWrite = ssi.writeUint32.bind(ssi);
  ssi.writeUint32 = (offset, value) => {
    if (offset === 0x60) {
      if (pos < 0 && (value & 0xff) === 0x4b) {
        pos = 0;
        readPos = 0;
      } else if (pos >= 0) pos++;
    }
    return origWrite(offset, value);
  };
  ssi.readUint32 = (offset) => {
    if (offset === 0x60 && pos >= 0) {
      const k = readPos++;
      if (readPos >= 13) pos = -1;
      return k >= 5 && k < 13 ? uid[k - 5] : 0;
    }
    return origRead(offset);
  };
}

function powerOn(cause) {
  sim = new Simulator();
  mcu = sim.rp2040;
  mcu.logger = quietLogger;
  mcu.loadBootrom(bootromWords);
  mcu.flash.set(flashKeep);
  mcu.core.PC = XIP_BASE; // as rp2040js's own demo: enter boot2 at the start of flash
  hung = false;
  event = '';
  txFifo.length = 0;
  rxLine.length = 0;
  rxPending = txPending = false;
  cdcIn.length = 0;
  cdcOut = '';
  stats.boots++;
  const wdt = mcu.peripherals[0x40058];
  wdt.reason = cause; // pico-sdk's watchdog_caused_reboot(): any reason bit means a watchdog reboot
  wdt.onWatchdogTrigger = () => {
    wdt.alarm.enable = false;
    wdt.timer.enable = false;
    if (wdt.reason & 1) stats.wdtTrips++;
    event = wdt.reason & 1 ? 'wdt' : 'reset';
  };
  uartSetup(mcu.uart[0]);
  uartSetup(mcu.uart[1]);
  ssiSetup(mcu.peripherals[0x18000]);
  rxAlarm = sim.clock.createAlarm(rxArrive);
  txAlarm = sim.clock.createAlarm(txDrain);
  for (const pin of mcu.gpio) {
    pin.addListener(() => {
      if (!pin.outputEnable) return;
      const level = pin.outputValue ? 1 : 0;
      pin.setInputValue(!!level); // an output reads back its own level, as on the chip
      if (armKind === 'pin' && --armLeft === 0) {
        armKind = '';
        event = 'cut';
        return; // the write never reaches the mechanics: the power went at this instant
      }
      outs.push([now(), pin.index, level]);
    });
  }
  const sio = mcu.sio;
  const sioRead = sio.readUint32.bind(sio);
  sio.readUint32 = (offset) => {
    if (offset === 4) readMask |= sampledPins();
    return sioRead(offset);
  };
  cdc = new USBCDC(mcu.usbCtrl);
  cdc.onSerialData = (buf) => {
    cdcOut += Buffer.from(buf).toString('latin1');
  };
}

// Which pin a GPIO_IN read samples. MicroPython's Pin.value() (mp_hal_pin_read -> pico-sdk gpio_get)
// loads sio_hw->gpio_in with the pin number in r2 and its mask (1 << pin) in r1 (seen in this UF2's
// code); any other read (a whole-port read) counts as sampling every input.
function sampledPins() {
  const r = mcu.core.registers;
  const pin = r[2] >>> 0;
  if (pin < 30 && r[1] >>> 0 === 1 << pin) return 1 << pin;
  return 0x3fffffff;
}

function flashOp(kind) {
  const r = mcu.core.registers;
  const off = r[0] >>> 0;
  const count = r[1 + (kind === 'program' ? 1 : 0)] >>> 0;
  const cut = armKind === 'flash' && --armLeft === 0;
  if (cut) armKind = '';
  // A cut operation is half done: an erase leaves the first half of the range erased and the rest
  // as it was; a program leaves the first half of its bytes programmed (a torn page).
  const n = cut ? Math.floor(count / 2) : count;
  if (kind === 'erase') {
    mcu.flash.fill(0xff, off, off + n);
    stats.erases++;
    stats.erasedBytes += n;
  } else {
    const src = r[1] >>> 0;
    for (let i = 0; i < n; i++) mcu.flash[off + i] &= mcu.readUint8(src + i);
    stats.programs++;
    stats.programmedBytes += n;
  }
  if (cut) {
    event = 'cut';
    return;
  }
  // The part is busy: the core waits with interrupts off. Advance emulated time; alarms (timer,
  // watchdog, UART line) still fire but no interrupt is taken, so RX bytes pile up in the FIFO.
  const ns = kind === 'erase' ? (count / 4096) * flashTimes.eraseNs : Math.ceil(count / 256) * flashTimes.pageNs;
  const before = stats.rxBytes;
  sim.clock.tick(ns);
  stats.rxDuringFlash += stats.rxBytes - before;
  stats.flashNs += ns;
}

function runFor(ns) {
  const { clock } = sim;
  const core = mcu.core;
  const end = clock.nanos + ns;
  while (clock.nanos < end && !event) {
    if (hung) {
      clock.tick(end - clock.nanos);
      break;
    }
    if (core.waiting) {
      const next = clock.nextAlarm ? clock.nextAlarm.nanos : end;
      clock.tick(Math.max(0, Math.min(next, end) - clock.nanos));
      continue;
    }
    const pc = core.PC;
    if (pc === ROM_ERASE || pc === ROM_PROGRAM) {
      flashOp(pc === ROM_ERASE ? 'erase' : 'program');
      core.PC = core.LR & ~1;
      continue;
    }
    const cycles = core.executeInstruction();
    busyCycles += cycles;
    if (profEvery) {
      profLeft -= cycles;
      if (profLeft <= 0) {
        profLeft += profEvery;
        profSamples++;
        profPc.set(pc, (profPc.get(pc) || 0) + 1);
        const x = core.IPSR;
        profIrq.set(x, (profIrq.get(x) || 0) + 1);
      }
    }
    clock.tick(cycles * CYCLE_NS);
  }
}

function setInputs(mask) {
  for (const pin of mcu.gpio) {
    if (pin.outputEnable) continue;
    const level = !!(mask & (1 << pin.index));
    if (pin.rawInputValue !== level) pin.setInputValue(level);
  }
}

function handle(req) {
  switch (req.op) {
    case 'load': {
      if (req.uf2) loadUF2(req.uf2);
      if (req.fs) flashKeep.set(fs.readFileSync(req.fs), FS_OFFSET);
      if (mcu) mcu.flash.set(flashKeep);
      return {};
    }
    case 'boot':
      if (req.uid) uid = Buffer.from(req.uid, 'hex');
      powerOn(req.cause || 0);
      return { t: 0 };
    case 'off':
      if (mcu) flashKeep.set(mcu.flash.subarray(0, FLASH_SIZE));
      sim = mcu = null;
      return {};
    case 'run': {
      if (!mcu) return { error: 'off' };
      outs = [];
      readMask = 0;
      txOut = [];
      if (req.in !== undefined) setInputs(req.in);
      if (req.adc) for (let i = 0; i < req.adc.length; i++) mcu.adc.channelValues[i] = req.adc[i];
      if (req.rx) {
        const bytes = Buffer.from(req.rx, 'hex');
        for (const b of bytes) rxLine.push(b);
        if (rxLine.length && !rxPending) {
          rxPending = true;
          rxAlarm.schedule(byteNs);
        }
      }
      if (req.cdc) for (const b of Buffer.from(req.cdc, 'hex')) cdcIn.push(b);
      while (cdcIn.length && !cdc.txFIFO.full) cdc.sendSerialByte(cdcIn.shift());
      const c0 = busyCycles;
      runFor(req.ns);
      const ev = event;
      if (ev) {
        flashKeep.set(mcu.flash.subarray(0, FLASH_SIZE));
        event = '';
      }
      const reply = {
        t: now(), busy: busyCycles - c0, tx: Buffer.from(txOut).toString('hex'), out: outs, rd: readMask, ev,
        fw: stats.erases + stats.programs,
        rxq: rxLine.length,
      };
      if (cdcOut) {
        reply.cdc = cdcOut;
        cdcOut = '';
      }
      return reply;
    }
    case 'arm':
      armKind = req.kind;
      armLeft = req.k;
      return {};
    case 'disarm':
      armKind = '';
      armLeft = 0;
      return {};
    case 'hang':
      hung = true;
      return {};
    case 'prof': {
      // {every: cycles} starts sampling (0 stops); the answer holds what was sampled since the last call.
      const reply = { samples: profSamples, pc: [...profPc.entries()], irq: [...profIrq.entries()], busy: busyCycles };
      profPc = new Map();
      profIrq = new Map();
      profSamples = 0;
      profEvery = req.every || 0;
      profLeft = profEvery;
      return reply;
    }
    case 'flashtime':
      flashTimes = FLASH_TIMES[req.mode];
      return {};
    case 'dump':
      fs.writeFileSync(req.path, mcu ? mcu.flash.subarray(0, FLASH_SIZE) : flashKeep);
      return {};
    case 'stats':
      return { ...stats, busyCycles, t: mcu ? now() : 0, armed: armLeft, baud: Math.round(1e10 / byteNs), rxq: rxLine.length };
    default:
      return { error: `unknown op ${req.op}` };
  }
}

function loadUF2(file) {
  const buf = fs.readFileSync(file);
  for (let off = 0; off + 512 <= buf.length; off += 512) {
    const dv = new DataView(buf.buffer, buf.byteOffset + off, 512);
    if (dv.getUint32(0, true) !== 0x0a324655 || dv.getUint32(4, true) !== 0x9e5d5157) throw new Error(`${file}: not a UF2`);
    const addr = dv.getUint32(12, true);
    const size = dv.getUint32(16, true);
    flashKeep.set(buf.subarray(off + 32, off + 32 + size), addr - XIP_BASE);
  }
}

const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  let reply;
  try {
    reply = handle(JSON.parse(line));
  } catch (e) {
    reply = { error: String(e && e.stack ? e.stack : e) };
  }
  process.stdout.write(JSON.stringify(reply) + '\n');
}
