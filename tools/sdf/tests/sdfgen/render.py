"""Renders x86_64 systems with sdfgen (the Microkit SDF generator from PyPI).

Usage: python render.py OUT_DIR

Writes one .xml per system and expect.json with what each must contain;
the Rust test checks that `bulkhead check` accepts every file as it is and
reads the same structure.
"""
import json
import sys
from pathlib import Path

from sdfgen import SystemDescription as SD

PADDR_TOP = 0x1_0000_0000


def serial_system():
    sdf = SD(SD.Arch.X86_64, PADDR_TOP)
    drv = SD.ProtectionDomain("serial_driver", "serial_driver.elf", priority=200, stack_size=0x4000)
    virt = SD.ProtectionDomain("serial_virt", "serial_virt.elf", priority=199)
    clients = [SD.ProtectionDomain(f"client{i}", f"client{i}.elf", priority=100 + i) for i in range(3)]
    drv.add_ioport(SD.IoPort(0x3F8, 8))
    drv.add_irq(SD.IrqIoapic(0, 4, 4, trigger=SD.IrqIoapic.Trigger.EDGE,
                             polarity=SD.IrqIoapic.Polarity.ACTIVEHIGH, setvar_id="uart_irq"))
    drv.add_irq(SD.IrqMsi(0, 3, 0, 40, 0))
    rx = SD.MemoryRegion(sdf, "rx_queue", 0x1000)
    tx = SD.MemoryRegion(sdf, "tx_queue", 0x1000)
    sdf.add_mr(rx)
    sdf.add_mr(tx)
    drv.add_map(SD.Map(rx, 0x4000000, "rw", setvar_vaddr="rx_queue"))
    drv.add_map(SD.Map(tx, 0x4001000, "rw", setvar_vaddr="tx_queue"))
    virt.add_map(SD.Map(rx, 0x4000000, "rw"))
    virt.add_map(SD.Map(tx, 0x4001000, "r"))
    for pd in [drv, virt] + clients:
        sdf.add_pd(pd)
    sdf.add_channel(SD.Channel(drv, virt))
    for c in clients:
        data = SD.MemoryRegion(sdf, f"{c.name}_data", 0x2000)
        sdf.add_mr(data)
        c.add_map(SD.Map(data, 0x5000000, "rw", setvar_vaddr="data", setvar_size="data_size"))
        virt.add_map(SD.Map(data, virt.get_map_vaddr(data), "r", cached=True))
        sdf.add_channel(SD.Channel(c, virt, pp_a=True, pd_a_setvar_id="serial_ch"))
    return sdf, dict(pds=5, channels=4, regions=5)


def vmm_system():
    sdf = SD(SD.Arch.X86_64, PADDR_TOP)
    vmm = SD.ProtectionDomain("vmm", "vmm.elf", priority=100, stack_size=0x10000)
    vm = SD.VirtualMachine("linux", [SD.VirtualMachine.Vcpu(id=0), SD.VirtualMachine.Vcpu(id=1)])
    ram = SD.MemoryRegion(sdf, "guest_ram", 0x1000_0000)
    dev = SD.MemoryRegion(sdf, "hpet", 0x1000, paddr=0xFED00000)
    sdf.add_mr(ram)
    sdf.add_mr(dev)
    vm.add_map(SD.Map(ram, 0x0, "rwx"))
    vm.add_map(SD.Map(dev, 0xFED00000, "rw", cached=False))
    vmm.add_map(SD.Map(ram, 0x2000_0000, "rw", setvar_vaddr="guest_ram_vaddr"))
    vmm.set_virtual_machine(vm)
    mon = SD.ProtectionDomain("introspect", "introspect.elf", priority=150)
    mon.add_map(SD.Map(ram, 0x2000_0000, "r"))
    sdf.add_pd(vmm)
    sdf.add_pd(mon)
    sdf.add_channel(SD.Channel(mon, vmm))
    return sdf, dict(pds=2, channels=1, regions=2)


def tree_system():
    sdf = SD(SD.Arch.X86_64, PADDR_TOP)
    root = SD.ProtectionDomain("root", "root.elf", priority=250, budget=500, period=1000)
    mid = SD.ProtectionDomain("middle", "middle.elf", priority=200, passive=True)
    leaves = [SD.ProtectionDomain(f"leaf{i}", "leaf.elf", priority=10) for i in range(4)]
    for leaf in leaves:
        mid.add_child_pd(leaf)
    root.add_child_pd(mid, child_id=5)
    sdf.add_pd(root)
    for leaf in leaves:
        sdf.add_channel(SD.Channel(leaf, mid, pp_a=True))
    return sdf, dict(pds=6, channels=4, regions=0)


def many_channels_system():
    sdf = SD(SD.Arch.X86_64, PADDR_TOP)
    hub = SD.ProtectionDomain("hub", "hub.elf", priority=254)
    sdf.add_pd(hub)
    for i in range(40):
        pd = SD.ProtectionDomain(f"spoke{i:02}", "spoke.elf", priority=1)
        sdf.add_pd(pd)
        sdf.add_channel(SD.Channel(pd, hub, pp_a=(i % 2 == 0) or None, notify_b=(i % 3 != 0)))
    return sdf, dict(pds=41, channels=40, regions=0)


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    expect = {}
    for name, build in [("serial", serial_system), ("vmm", vmm_system),
                        ("tree", tree_system), ("many_channels", many_channels_system)]:
        sdf, facts = build()
        (out / f"{name}.xml").write_text(sdf.render())
        expect[f"{name}.xml"] = facts
    (out / "expect.json").write_text(json.dumps(expect, indent=2))


if __name__ == "__main__":
    main()
