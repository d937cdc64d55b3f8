//! Host-side test support: simulated Ethernet segment, QEMU launcher and scenario runner.
