"""Parsing of host facts and load (agents.host_facts) from captured command output; malformed output raises
FactsParseError, never IndexError/KeyError/ValueError; compare_registration's verdicts."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.errors import DriverError, FactsParseError
from agents.host_facts import (
    Disk,
    HostFacts,
    Nic,
    block_devices,
    compare_registration,
    cpu_times,
    disk_sectors,
    meminfo_kib,
    net_bytes,
    parse_facts,
    parse_ip_link,
    parse_load,
    parse_lsblk,
    split_sections,
    version,
)

# ---- captured samples ----------------------------------------------------------------------------------------
EPYC_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 1
model name\t: AMD EPYC
physical id\t: 0
siblings\t: 2
core id\t\t: 0
cpu cores\t: 2
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep

processor\t: 1
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 1
model name\t: AMD EPYC
physical id\t: 0
siblings\t: 2
core id\t\t: 1
cpu cores\t: 2
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep
"""


def xeon_cpuinfo(sockets: int = 2, cores: int = 2, threads: int = 2) -> str:
    blocks, n = [], 0
    for _thread in range(threads):
        for socket in range(sockets):
            for core in range(cores):
                blocks.append(f"processor\t: {n}\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold "
                              f"6338 CPU @ 2.00GHz\nphysical id\t: {socket}\nsiblings\t: {cores * threads}\n"
                              f"core id\t\t: {core}\ncpu cores\t: {cores}\n")  # fmt: skip
                n += 1
    return "\n".join(blocks)


MEMINFO = """MemTotal:       24683772 kB
MemFree:        21706036 kB
MemAvailable:   23802876 kB
Buffers:           91232 kB
Cached:          1808412 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
"""

LSBLK = json.dumps({"blockdevices": [
    {"name": "sda", "size": 480103981056, "type": "disk", "rota": False},
    {"name": "sdb", "size": "4000787030016", "type": "disk", "rota": "1"},  # older util-linux: strings
    {"name": "sda1", "size": 536870912, "type": "part", "rota": False},
    {"name": "sr0", "size": 1073741312, "type": "rom", "rota": True},
    {"name": "loop0", "size": 67108864, "type": "loop", "rota": False},
    {"name": "zram0", "size": 8589934592, "type": "disk", "rota": False},
    {"name": "sdc", "size": 0, "type": "disk", "rota": True},  # a card reader without a card
]})  # fmt: skip

IP_LINK = json.dumps([
    {"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK", "UP", "LOWER_UP"], "mtu": 65536, "operstate": "UNKNOWN",
     "link_type": "loopback", "address": "00:00:00:00:00:00", "broadcast": "00:00:00:00:00:00"},
    {"ifindex": 2, "ifname": "eno1", "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"], "mtu": 1500,
     "operstate": "UP", "link_type": "ether", "address": "3c:ec:ef:12:34:56", "broadcast": "ff:ff:ff:ff:ff:ff"},
    {"ifindex": 3, "ifname": "eno2", "flags": ["BROADCAST", "MULTICAST"], "mtu": 1500, "operstate": "DOWN",
     "link_type": "ether", "address": "3c:ec:ef:12:34:57", "broadcast": "ff:ff:ff:ff:ff:ff"},
    {"ifindex": 9, "ifname": "wg0", "flags": ["POINTOPOINT", "NOARP", "UP", "LOWER_UP"], "mtu": 1420,
     "operstate": "UNKNOWN", "link_type": "none"},
])  # fmt: skip

PVE = "pve-manager/8.2.4/faa83925c9641325 (running kernel: 6.8.8-2-pve)"
LIBVIRTD = "libvirtd (libvirt) 9.0.0"
QEMU = "QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u13)\nCopyright (c) 2003-2022 Fabrice Bellard"

# /proc/stat captured twice, one second apart (2 vCPUs; intr and softirq lines left out)
STAT0 = """cpu  52963 0 17033 74729 2990 0 1384 11630 0 0
cpu0 20652 0 7711 44474 1038 0 449 6382 0 0
cpu1 32310 0 9321 30255 1951 0 935 5248 0 0
ctxt 1809491
btime 1796674192
processes 40884
procs_running 2
procs_blocked 0
"""
STAT1 = """cpu  53045 0 17051 74816 2998 0 1386 11632 0 0
cpu0 20727 0 7718 44490 1039 0 449 6383 0 0
cpu1 32318 0 9332 30325 1959 0 937 5249 0 0
ctxt 1811771
btime 1796674192
processes 40899
procs_running 2
procs_blocked 0
"""
BLOCKS = "dm-0\nloop0\nloop1\nnvme0n1\nsda\nsr0\nzram0\n"
DISKSTATS0 = """   7       0 loop0 1200 0 90000 100 0 0 0 0 0 100 100 0 0 0 0 0 0
   7       1 loop1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
 259       0 nvme0n1 100000 2000 8000000 5000 50000 3000 4000000 7000 0 9000 12000 0 0 0 0 100 50
 259       1 nvme0n1p1 99000 2000 7900000 4900 49000 3000 3900000 6900 0 8900 11800 0 0 0 0 0 0
   8       0 sda 500 0 40000 300 200 0 16000 500 0 700 800 0 0 0 0 0 0
   8       1 sda1 400 0 39000 250 200 0 16000 500 0 650 750 0 0 0 0 0 0
 253       0 dm-0 98000 0 7800000 5100 52000 0 3950000 9000 0 9100 14100 0 0 0 0 0 0
  11       0 sr0 10 0 80 2 0 0 0 0 0 2 2 0 0 0 0 0 0
"""
DISKSTATS1 = """   7       0 loop0 2400 0 180000 200 0 0 0 0 0 200 200 0 0 0 0 0 0
   7       1 loop1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
 259       0 nvme0n1 100100 2000 8002000 5010 50100 3000 4010000 7100 0 9050 12100 0 0 0 0 100 50
 259       1 nvme0n1p1 99100 2000 7902000 4910 49100 3000 3910000 7000 0 8950 11900 0 0 0 0 0 0
   8       0 sda 500 0 40000 300 210 0 16400 520 0 710 820 0 0 0 0 0 0
   8       1 sda1 400 0 39000 250 210 0 16400 520 0 660 770 0 0 0 0 0 0
 253       0 dm-0 98100 0 7802000 5110 52100 0 3960000 9100 0 9150 14200 0 0 0 0 0 0
  11       0 sr0 10 0 80 2 0 0 0 0 0 2 2 0 0 0 0 0 0
"""
NETDEV_HEAD = (
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|"
    "bytes    packets errs drop fifo colls carrier compressed\n"
)


def netdev_line(name: str, rx: int, rx_packets: int, tx: int, tx_packets: int) -> str:
    """One interface as the kernel prints it (net/core/net-procfs.c: dev_seq_printf_stats)."""
    counters = [rx, rx_packets, 0, 0, 0, 0, 0, 0, tx, tx_packets, 0, 0, 0, 0, 0, 0]
    widths = [7, 7, 4, 4, 4, 5, 10, 9, 8, 7, 4, 4, 4, 5, 7, 10]
    return f"{name:>6}: " + " ".join(f"{c:>{w}}" for c, w in zip(counters, widths, strict=True)) + "\n"


NETDEV0 = NETDEV_HEAD + netdev_line("lo", 2333612, 8525, 2333612, 8525) + netdev_line(
    "eno1", 419856329, 8754, 432297, 4393) + netdev_line("eno2", 0, 0, 0, 0)  # fmt: skip
NETDEV1 = NETDEV_HEAD + netdev_line("lo", 9333612, 9525, 9333612, 9525) + netdev_line(
    "eno1", 421856329, 9754, 932297, 5393) + netdev_line("eno2", 0, 0, 0, 0)  # fmt: skip


def facts_sections(**changes: str) -> dict[str, str]:
    sections = {"cpuinfo": xeon_cpuinfo(), "meminfo": MEMINFO, "kernel": "6.8.8-2-pve\n", "lsblk": LSBLK,
                "iplink": IP_LINK, "speed": "eno1 10000\neno2 -1\n", "libvirt": LIBVIRTD, "qemu": QEMU,
                "pve": PVE}  # fmt: skip
    return {**sections, **changes}


def load_sections(**changes: str) -> dict[str, str]:
    sections = {"blocks": BLOCKS, "uptime0": "789.29 748.16", "stat0": STAT0, "diskstats0": DISKSTATS0,
                "netdev0": NETDEV0, "uptime1": "791.29 749.90", "stat1": STAT1, "diskstats1": DISKSTATS1,
                "netdev1": NETDEV1, "meminfo": MEMINFO}  # fmt: skip
    return {**sections, **changes}


# ---- sections ------------------------------------------------------------------------------------------------
def test_sections_ignore_a_login_banner_and_refuse_duplicates() -> None:
    text = "Welcome to host7\n@@kernel\n6.1.0-18-amd64\n@@speed\n@@end\n"
    assert split_sections(text) == {"kernel": "6.1.0-18-amd64", "speed": "", "end": ""}
    with pytest.raises(FactsParseError, match="twice"):
        split_sections("@@kernel\na\n@@kernel\nb\n")


# ---- facts ---------------------------------------------------------------------------------------------------
def test_facts_of_a_two_socket_proxmox_node() -> None:
    facts = parse_facts(facts_sections())

    assert facts == HostFacts(
        cpu_model="Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz", cpu_count=8, sockets=2, cores=4,
        memory_mib=24683772 // 1024,
        disks=(Disk("sda", 480103981056, False), Disk("sdb", 4000787030016, True)),
        nics=(Nic("eno1", "3c:ec:ef:12:34:56", 10000, "UP"), Nic("eno2", "3c:ec:ef:12:34:57", None, "DOWN"),
              Nic("wg0", None, None, "UNKNOWN")),
        kernel="6.8.8-2-pve", libvirt_version="9.0.0", qemu_version="7.2.19", pve_version="8.2.4",
    )  # fmt: skip
    assert facts.total_disk_gib == pytest.approx((480103981056 + 4000787030016) / 1024**3)
    assert facts.disks[0].size_gib == pytest.approx(447.13, abs=0.01)


def test_facts_of_a_small_vm_without_optional_commands() -> None:
    facts = parse_facts({"cpuinfo": EPYC_CPUINFO, "meminfo": MEMINFO, "kernel": "6.1.0-18-amd64", "lsblk": "",
                         "iplink": "", "speed": "", "libvirt": "", "qemu": "", "pve": ""})  # fmt: skip
    assert (facts.cpu_model, facts.cpu_count, facts.sockets, facts.cores) == ("AMD EPYC", 2, 1, 2)
    assert facts.disks == () and facts.total_disk_gib == 0 and facts.nics == ()
    assert (facts.libvirt_version, facts.qemu_version, facts.pve_version) == (None, None, None)
    # sections of absent commands may be missing altogether
    assert parse_facts({"cpuinfo": EPYC_CPUINFO, "meminfo": MEMINFO, "kernel": "6.1.0"}).nics == ()


def test_cpuinfo_without_topology_leaves_sockets_and_cores_unknown() -> None:
    arm = "processor\t: 0\nBogoMIPS\t: 50.00\nCPU part\t: 0xd0c\n\nprocessor\t: 1\nBogoMIPS\t: 50.00\n"
    facts = parse_facts(facts_sections(cpuinfo=arm))
    assert (facts.cpu_model, facts.cpu_count, facts.sockets, facts.cores) == ("unknown", 2, None, None)


@pytest.mark.parametrize(
    ("kind", "text", "expected"),
    [("libvirt", LIBVIRTD, "9.0.0"), ("libvirt", "9.0.0\n", "9.0.0"), ("qemu", QEMU, "7.2.19"), ("pve", PVE, "8.2.4"),
     ("pve", "", None), ("qemu", "\n  \n", None)],
)  # fmt: skip
def test_versions(kind: str, text: str, expected: str | None) -> None:
    assert version(kind, text) == expected


def test_lsblk_keeps_whole_disks_only() -> None:
    assert [d.name for d in parse_lsblk(LSBLK)] == ["sda", "sdb"]  # no part, rom, loop, zram, empty drive
    assert parse_lsblk("") == ()


def test_ip_link_skips_loopback_and_maps_speeds() -> None:
    nics = parse_ip_link(IP_LINK, {"eno1": 25000})
    assert [(n.name, n.speed_mbps) for n in nics] == [("eno1", 25000), ("eno2", None), ("wg0", None)]


@pytest.mark.parametrize(
    ("section", "text", "named"),
    [("cpuinfo", "vendor_id : x\n", "no processor"),
     ("cpuinfo", "processor\t: 0\nphysical id\t: zero\n", "physical id"),
     ("meminfo", "MemFree: 10 kB\n", "MemTotal"),
     ("kernel", "", "kernel release"),
     ("lsblk", "{not json", "lsblk"),
     ("lsblk", '{"devices": []}', "lsblk"),
     ("lsblk", '{"blockdevices": [{"size": 1, "type": "disk"}]}', "without a name"),
     ("lsblk", '{"blockdevices": [{"name": "sda", "size": "big", "type": "disk"}]}', "size of disk sda"),
     ("lsblk", '{"blockdevices": [{"name": "sda", "size": 1, "type": "disk", "rota": "maybe"}]}', "ROTA"),
     ("iplink", "[{", "ip -j link"),
     ("iplink", '{"ifname": "eth0"}', "list"),
     ("iplink", '[{"address": "aa:bb:cc:dd:ee:ff"}]', "without a name"),
     ("speed", "eth0\n", "link speed of eth0"),
     ("speed", "eth0 fast\n", "link speed of eth0"),
     ("qemu", "qemu-system-x86_64: error while loading shared libraries", "qemu version"),
     ("pve", "pve-manager/unknown", "pve version")],
)  # fmt: skip
def test_malformed_facts_are_named(section: str, text: str, named: str) -> None:
    with pytest.raises(FactsParseError, match=named) as err:
        parse_facts(facts_sections(**{section: text}))
    assert err.value.code == "FACTS_UNPARSEABLE" and isinstance(err.value, DriverError)


def test_a_missing_required_section_is_named() -> None:
    sections = facts_sections()
    del sections["meminfo"]
    with pytest.raises(FactsParseError, match="'meminfo'"):
        parse_facts(sections)


# ---- load ----------------------------------------------------------------------------------------------------
def test_cpu_of_a_captured_stat_pair() -> None:
    c0, c1 = cpu_times(STAT0), cpu_times(STAT1)
    # deltas: user 82, system 18, idle 87, iowait 8, softirq 2, steal 2 -> busy 102 of 199 ticks
    assert (c1.busy - c0.busy, c1.steal - c0.steal, c1.total - c0.total) == (102, 2, 199)
    assert cpu_times("cpu  1 2 3 4\n") == cpu_times("cpu  1 2 3 4 0 0 0 0 0 0\n")  # old kernels: fewer fields


def test_load_sample() -> None:
    load = parse_load(load_sections())

    assert load.interval_s == pytest.approx(2.0)
    assert load.cpu_busy_pct == pytest.approx(100 * 102 / 199)
    assert load.cpu_steal_pct == pytest.approx(100 * 2 / 199)
    # whole disks only: nvme0n1 (2000 sectors read, 10000 written) and sda (400 written); not its partitions,
    # loop0, dm-0 (stacked on nvme0n1) or zram0
    assert load.disk_read_bps == pytest.approx(2000 * 512 / 2.0)
    assert load.disk_write_bps == pytest.approx((10000 + 400) * 512 / 2.0)
    assert (load.net_rx_bps, load.net_tx_bps) == (pytest.approx(2_000_000 / 2.0), pytest.approx(500_000 / 2.0))
    assert (load.mem_available_mib, load.mem_total_mib) == (23802876 // 1024, 24683772 // 1024)


def test_load_helpers_exclude_what_is_not_a_disk_or_a_nic() -> None:
    assert block_devices(BLOCKS + "cciss!c0d0\nmd0\nram0\n") == {"nvme0n1", "sda", "sr0", "cciss/c0d0"}
    assert set(disk_sectors(DISKSTATS0, block_devices(BLOCKS))) == {"nvme0n1", "sda", "sr0"}
    assert set(net_bytes(NETDEV0)) == {"eno1", "eno2"}
    old_kernel = NETDEV_HEAD + "  eth0:419856329    8754    0    0    0     0          0         0   432297" + " 0" * 7
    assert net_bytes(old_kernel) == {"eth0": (419856329, 432297)}  # no blank after the colon


def test_counters_that_go_back_count_as_no_traffic() -> None:
    load = parse_load(load_sections(netdev0=NETDEV1, netdev1=NETDEV0, diskstats0=DISKSTATS1, diskstats1=DISKSTATS0))
    assert (load.net_rx_bps, load.net_tx_bps, load.disk_read_bps, load.disk_write_bps) == (0, 0, 0, 0)


def test_memory_available_is_estimated_on_old_kernels() -> None:
    old = "MemTotal: 1000000 kB\nMemFree: 102400 kB\nBuffers: 10240 kB\nCached: 20480 kB\n"
    assert parse_load(load_sections(meminfo=old)).mem_available_mib == 130
    assert meminfo_kib(MEMINFO)["HugePages_Total"] == 0


@pytest.mark.parametrize(
    ("section", "text", "named"),
    [("uptime1", "789.29 748.16", "not apart in time"),
     ("uptime0", "", "/proc/uptime"),
     ("stat0", "intr 1 2 3\n", "no aggregate 'cpu' line"),
     ("stat1", "cpu  1 2 x 4\n", "/proc/stat cpu line"),
     ("stat1", "cpu  1 2\n", "at least 4"),
     ("diskstats0", "   8 0 sda 1 2 3\n", "diskstats"),
     ("diskstats1", DISKSTATS1.replace("40000", "4e4"), "sectors read"),
     ("netdev0", "eno1: 1 2 3\n", "header"),
     ("netdev1", NETDEV_HEAD + "eno1 1 2 3\n", "cannot read the line"),
     ("netdev1", NETDEV_HEAD + "eno1: " + "x " * 16 + "\n", "rx bytes"),
     ("meminfo", "", "MemTotal")],
)  # fmt: skip
def test_malformed_load_is_named(section: str, text: str, named: str) -> None:
    with pytest.raises(FactsParseError, match=named):
        parse_load(load_sections(**{section: text}))


@settings(max_examples=200, deadline=None)
@given(section=st.sampled_from(sorted(facts_sections()) + sorted(load_sections())), text=st.text(max_size=300))
def test_any_text_either_parses_or_raises_facts_parse_error(section: str, text: str) -> None:
    for parse, sections in ((parse_facts, facts_sections()), (parse_load, load_sections())):
        if section in sections:
            with contextlib.suppress(FactsParseError):
                parse({**sections, section: text})


# ---- registration ----------------------------------------------------------------------------------------------
def node() -> HostFacts:
    return parse_facts(facts_sections())  # 8 logical CPUs, 24105 MiB, disks 447.1 + 3726.0 GiB


def test_a_registration_that_agrees() -> None:
    assert compare_registration(node(), vcpus=8, ram_mib=24576, disk_gib=4000) == []  # RAM 1.95 % above
    assert compare_registration(node(), vcpus=4, ram_mib=23000, disk_gib=100) == []  # holding back is fine


def test_registration_mismatches_have_codes_and_reasons() -> None:
    found = compare_registration(node(), vcpus=16, ram_mib=32768, disk_gib=5000)

    assert [(m.code, m.resource, m.registered) for m in found] == [
        ("VCPUS_EXCEED_CPUS", "vcpus", 16),
        ("RAM_MISMATCH", "ram_mib", 32768),
        ("DISK_EXCEEDS_DISKS", "disk_gib", 5000),
    ]
    assert [m.measured for m in found] == [8, 24683772 // 1024, pytest.approx(4173.2, abs=0.05)]
    assert found[0].reason == "registered 16 vCPUs, the host has 8 logical CPUs"
    assert "+35.9 %" in found[1].reason and "24105 MiB" in found[1].reason
    assert "4173.2 GiB" in found[2].reason


def test_registration_ram_tolerance_works_both_ways() -> None:
    assert [m.code for m in compare_registration(node(), 8, 20000, 100)] == ["RAM_MISMATCH"]  # 17 % below
    assert compare_registration(node(), 8, 20000, 100, tolerance=0.2) == []


def test_registration_disk_is_not_checked_without_disks() -> None:
    facts = parse_facts(facts_sections(lsblk=""))
    assert compare_registration(facts, 8, 24105, 10_000) == []
