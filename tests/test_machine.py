"""The machine record stored with timed results, and the VNNI test the INT8 policy rests on."""

from __future__ import annotations

import unetblur.machine as machine


def test_vnni_is_read_from_the_cpu_flags_on_x86(monkeypatch):
    monkeypatch.setattr(machine.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(machine, "_cpuinfo", lambda: "model name\t: Some CPU\nflags\t: sse avx2 fma\n")
    assert machine.cpu_has_vnni() is False
    monkeypatch.setattr(machine, "_cpuinfo", lambda: "flags\t: sse avx2 avx512f avx512_vnni\n")
    assert machine.cpu_has_vnni() is True
    monkeypatch.setattr(machine, "_cpuinfo", lambda: "")  # unreadable: assume the saturating kind
    assert machine.cpu_has_vnni() is False


def test_arm_never_counts_as_saturating(monkeypatch):
    monkeypatch.setattr(machine.platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(machine, "_cpuinfo", lambda: "flags\t: fp asimd\n")
    assert machine.cpu_has_vnni() is True


def test_machine_info_names_the_cpu_and_the_table_header_says_it(monkeypatch):
    monkeypatch.setattr(machine.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(machine, "_cpuinfo", lambda: "model name\t: AMD EPYC\nflags\t: avx2\n")
    info = machine.machine_info()
    assert info["cpu"] == "AMD EPYC" and info["int8_vnni"] is False and info["cpu_count"] >= 1
    assert machine.describe_machine({**info, "cpu_count": 2}) == "2 CPU cores (AMD EPYC, int8 without VNNI)"
    assert machine.describe_machine({"cpu_count": 2, "platform": "Linux"}) == "2 CPU cores"  # older records
    assert machine.describe_machine({"cpu_count": 2, "processor": "x86_64"}) == "2 CPU cores (x86_64)"
