"""Host controller of the cardless ATM: camera, vision, dispenser link and customer journey."""
