"""Interference: the arithmetic on scripted /proc snapshots, the thresholds at their edges, the probe on a
scripted /proc tree, NVML's other processes with the project's fake, and the flag in summary and report."""

from __future__ import annotations

import os
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from fake_gpu import FakeBoard, FakeNvml
from gate_helpers import make

from harness import interference, summary
from harness.config import HarnessConfig, InferenceWorkload, ModelConfig, PrecisionConfig
from harness.errors import ConfigError
from harness.interference import CpuSnapshot, Thresholds
from harness.probes.interference import Interference, cpu_freq_mhz, process_stats, siblings
from harness.probes.nvml import NvmlGpu
from harness.validation import validate

HZ = 100


def stat_line(cpu: str, user=0, nice=0, system=0, idle=0, iowait=0, irq=0, softirq=0, steal=0, guest=0) -> str:
    return f"{cpu} {user} {nice} {system} {idle} {iowait} {irq} {softirq} {steal} {guest} 0"


def proc_stat(*lines: str) -> str:
    # the aggregate line must be ignored: it is made deliberately inconsistent here
    return "\n".join([stat_line("cpu", user=999999), *lines, "intr 1 2 3", "ctxt 42"]) + "\n"


def snap(text: str, own: int, pids: int = 1, **kw) -> CpuSnapshot:
    return CpuSnapshot(interference.parse_proc_stat(text), own, pids, **kw)


# ---- parsing


def test_parse_proc_stat_keeps_the_per_core_lines_only():
    text = proc_stat(stat_line("cpu0", user=10, steal=3), stat_line("cpu12", idle=7))
    assert interference.parse_proc_stat(text) == {
        0: (10, 0, 0, 0, 0, 0, 0, 3, 0, 0),
        12: (0, 0, 0, 7, 0, 0, 0, 0, 0, 0),
    }
    # an old kernel without steal/guest columns: the missing ones are 0
    assert interference.parse_proc_stat("cpu3 1 2 3 4\n") == {3: (1, 2, 3, 4, 0, 0, 0, 0)}


def test_parse_pid_stat_counts_fields_after_the_last_parenthesis():
    # a process name with spaces and parentheses: "(a) b (c)"
    fields = ["S", "77"] + ["0"] * 9 + ["120", "30", "5", "2"] + ["0"] * 30
    text = "4242 ((a) b (c)) " + " ".join(fields)
    assert interference.parse_pid_stat(text) == (77, 120 + 30 + 5 + 2)


def test_family_is_the_roots_and_every_descendant():
    stats = {1: (0, 0), 10: (1, 0), 11: (10, 0), 12: (11, 0), 20: (1, 0), 21: (20, 0), 30: (10, 0)}
    assert interference.family(stats, [10]) == {10, 11, 12, 30}
    assert interference.family(stats, [10, 20]) == {10, 11, 12, 30, 20, 21}
    assert interference.family(stats, [99]) == set()  # a root that is gone


# ---- the arithmetic, known answers


def test_others_are_busy_minus_own_as_a_share_of_the_affinity_cores():
    # 4 cores on the machine; the run may use cores 1 and 3 only. Over the window (ticks at 100 Hz):
    #   core 1: user +150, system +30, idle +20, steal 0  -> total 200, busy 180
    #   core 3: user +60, nice +20, idle +100, iowait +10, softirq +10 -> total 200, busy 90
    #   cores 0 and 2 are fully busy with someone else: they must not count
    #   own (the run's processes): +120 ticks
    begin = proc_stat(
        stat_line("cpu0", user=1000), stat_line("cpu1", user=500, system=50, idle=700),
        stat_line("cpu2", user=1000), stat_line("cpu3", user=100, idle=900, iowait=5),
    )  # fmt: skip
    end = proc_stat(
        stat_line("cpu0", user=1200), stat_line("cpu1", user=650, system=80, idle=720),
        stat_line("cpu2", user=1200), stat_line("cpu3", user=160, nice=20, idle=1000, iowait=15, softirq=10),
    )  # fmt: skip
    w = interference.cpu_window(snap(begin, own=1000), snap(end, own=1120), cores=[1, 3], hz=HZ)
    assert w["cores"] == [1, 3] and w["n_cores"] == 2
    assert w["cores_s"] == pytest.approx(4.0)  # 400 ticks
    assert w["busy_s"] == pytest.approx(2.7)  # 180 + 90
    assert w["own_s"] == pytest.approx(1.2)
    assert w["other_s"] == pytest.approx(1.5)
    assert w["other_cpu_share"] == pytest.approx(150 / 400)
    assert w["steal_share"] == 0


def test_the_same_load_is_the_same_share_on_2_and_on_64_cores():
    def window(n_cores: int) -> dict:
        # every core: 100 ticks in the window, 20 of them busy with others; the run's own work is 50 ticks
        begin = proc_stat(*(stat_line(f"cpu{c}") for c in range(n_cores)))
        end = proc_stat(*(stat_line(f"cpu{c}", user=20 + (50 if c == 0 else 0), idle=80 - (50 if c == 0 else 0))
                          for c in range(n_cores)))  # fmt: skip
        return interference.cpu_window(snap(begin, 0), snap(end, 50), list(range(n_cores)), HZ)

    assert window(2)["other_cpu_share"] == pytest.approx(0.2)
    assert window(64)["other_cpu_share"] == pytest.approx(0.2)


def test_steal_is_a_share_of_the_cores_time_and_not_busy_time():
    begin = proc_stat(stat_line("cpu0"), stat_line("cpu1"))
    end = proc_stat(stat_line("cpu0", user=70, idle=10, steal=20), stat_line("cpu1", user=60, idle=30, steal=10))
    w = interference.cpu_window(snap(begin, 0), snap(end, 130), [0, 1], HZ)
    assert w["steal_s"] == pytest.approx(0.3) and w["steal_share"] == pytest.approx(30 / 200)
    assert w["other_s"] == 0 and w["other_cpu_share"] == 0  # all the busy time was the run's own


def test_own_time_ahead_of_the_core_counters_is_clamped_at_zero():
    begin, end = proc_stat(stat_line("cpu0")), proc_stat(stat_line("cpu0", user=99, idle=1))
    w = interference.cpu_window(snap(begin, 0), snap(end, 101), [0], HZ)
    assert w["other_s"] == 0 and w["other_cpu_share"] == 0 and w["own_s"] == pytest.approx(1.01)


def test_a_window_without_ticks_or_cores_gives_no_share():
    same = proc_stat(stat_line("cpu0", user=5))
    assert interference.cpu_window(snap(same, 0), snap(same, 0), [0], HZ)["other_cpu_share"] is None
    assert interference.cpu_window(snap(same, 0), snap(same, 0), [7], HZ)["n_cores"] == 0


def test_cpu_section_adds_load_average_and_frequency_or_says_not_readable():
    b, e = (
        proc_stat(stat_line("cpu0"), stat_line("cpu1")),
        proc_stat(stat_line("cpu0", idle=100), stat_line("cpu1", idle=100)),
    )
    freq = {0: 2000.0, 1: 3000.0, 5: 9999.0}  # core 5 is not the run's
    sec = interference.cpu_section(
        snap(b, 0, loadavg=(1.0, 2.0, 3.0), freq_mhz=freq, freq_source="cpufreq scaling_cur_freq"),
        snap(e, 0, loadavg=(4.0, 2.5, 3.0), freq_mhz={0: 1000.0, 1: 1000.0}, freq_source="cpufreq scaling_cur_freq"),
        [0, 1], HZ, window_s=1.0,
    )  # fmt: skip
    assert sec["loadavg_start"] == [1.0, 2.0, 3.0] and sec["loadavg_end"] == [4.0, 2.5, 3.0]
    assert sec["cpu_freq_mhz_start"] == {"mean": 2500.0, "min": 2000.0, "max": 3000.0}
    assert sec["cpu_freq_mhz_end"]["mean"] == 1000.0 and sec["cpu_freq_source"] == "cpufreq scaling_cur_freq"
    unreadable = interference.cpu_section(snap(b, 0), snap(e, 0), [0, 1], HZ, 1.0)
    assert unreadable["cpu_freq_mhz_start"] is None and unreadable["cpu_freq_source"] == "not readable"
    assert unreadable["loadavg_start"] is None


# ---- thresholds


def _judged(other=None, steal=None, gpu_others=None, t=None):
    node = {"node": 0, "n_cores": 2, "other_cpu_share": other, "steal_share": steal}
    gpus = [] if gpu_others is None else [{"rank": 0, "device": "0 H100", "other_processes": gpu_others,
                                           "processes": [{"pid": 900 + i} for i in range(gpu_others)]}]  # fmt: skip
    return interference.judge({"nodes": [node], "gpus": gpus}, t or Thresholds())


@pytest.mark.parametrize(
    "other, steal, expected",
    [(0.10, 0.0, False), (0.1001, 0.0, True), (0.0, 0.05, False), (0.0, 0.0501, True), (0.0, 0.0, False)],
)
def test_threshold_edges_flag_only_above(other, steal, expected):
    disturbed, reasons = _judged(other, steal)
    assert disturbed is expected and bool(reasons) is expected


def test_reasons_name_the_figure_and_the_setting():
    _, reasons = _judged(0.47, 0.2)
    assert reasons == [
        "other processes used 47% of the 2 available cores' time (threshold interference.max_other_cpu_share=0.1)",
        "steal time was 20% of the cores' time (threshold interference.max_steal_share=0.05)",
    ]


def test_any_other_gpu_process_flags_by_default_and_the_threshold_moves():
    assert _judged(0.0, 0.0, gpu_others=0)[0] is False
    disturbed, (reason,) = _judged(0.0, 0.0, gpu_others=1)
    assert disturbed and reason.startswith("1 other process(es) on GPU 0 H100 (pids 900;")
    assert _judged(0.0, 0.0, gpu_others=2, t=Thresholds(max_other_gpu_processes=2))[0] is False


def test_nothing_measured_is_none_not_false():
    assert _judged(None, None) == (None, [])


def test_section_merges_nodes_and_gpus_and_judges_the_worst_node():
    part = {"node": 0, "rank": 0, "cpu": {"n_cores": 8, "other_cpu_share": 0.02, "steal_share": 0.0}}
    part1 = {"node": 1, "rank": 2, "cpu": {"n_cores": 8, "other_cpu_share": 0.3, "steal_share": 0.0}}
    gpu_only = {"node": 1, "rank": 3, "gpu": {"device": "1 H100", "other_processes": 0, "processes": []}}
    sec = interference.section([part, None, part1, gpu_only], Thresholds())
    assert [n["node"] for n in sec["nodes"]] == [0, 1] and [g["rank"] for g in sec["gpus"]] == [3]
    assert sec["disturbed"] is True and sec["reason"].endswith(
        "on node 1 (threshold interference.max_other_cpu_share=0.1)"
    )
    assert sec["thresholds"] == {
        "max_other_cpu_share": 0.1,
        "max_steal_share": 0.05,
        "max_other_gpu_processes": 0,
        "min_sm_clock_fraction": 0.9,
    }
    assert interference.section([None], Thresholds()) is None
    cols = interference.columns({"interference": sec})
    assert cols["disturbed"] is True and cols["interference_other_cpu_share"] == 0.3
    assert cols["interference_gpu_other_processes"] == 0
    assert interference.columns({}) == {"disturbed": None, "disturbed_reason": None}


def test_warning_and_reader_only_for_a_disturbed_run():
    calm = interference.section([{"cpu": {"n_cores": 2, "other_cpu_share": 0.01, "steal_share": 0.0}}], Thresholds())
    busy = interference.section([{"cpu": {"n_cores": 2, "other_cpu_share": 0.6, "steal_share": 0.0}}], Thresholds())
    assert interference.warning(calm) is None and interference.disturbed({"interference": calm}) is None
    assert interference.warning(busy).startswith("disturbed: other processes used 60% of the 2 available cores")
    assert interference.disturbed({"interference": busy}) == busy["reason"]
    assert interference.disturbed({"interference": None}) is None  # older files, failed runs


# ---- GPU: other processes through NVML (the project's fake)


def _proc(pid, used=None):
    return SimpleNamespace(pid=pid, usedGpuMemory=used)


def test_nvml_lists_compute_and_graphics_processes():
    board = FakeBoard(processes=[_proc(10, 2**30), _proc(11)], graphics=[_proc(12, 5)])
    gpu = NvmlGpu(0, nvml=FakeNvml([board]))
    assert gpu.running_processes() == [
        {"pid": 10, "used_gpu_memory_bytes": 2**30, "kind": "compute"},
        {"pid": 11, "used_gpu_memory_bytes": None, "kind": "compute"},
        {"pid": 12, "used_gpu_memory_bytes": 5, "kind": "graphics"},
    ]


def test_gpu_others_exclude_the_runs_own_pids_over_both_snapshots():
    start = [{"pid": 10, "kind": "compute"}, {"pid": 50, "kind": "compute"}]
    end = [{"pid": 10, "kind": "compute"}, {"pid": 11, "kind": "compute"}, {"pid": 60, "kind": "graphics"}]
    out = interference.gpu_others([start, end], own_pids={10, 11})
    assert out["other_processes"] == 2 and [p["pid"] for p in out["processes"]] == [50, 60] and out["note"] is None
    # a container's pid namespace: none of NVML's host pids is ours; one of them is taken to be this run
    ns = interference.gpu_others([[{"pid": 7001}, {"pid": 7002}], None], own_pids={10})
    assert ns["other_processes"] == 1 and ns["note"] == interference.PID_NAMESPACE_NOTE
    assert interference.gpu_others([[]], own_pids={10})["other_processes"] == 0
    assert interference.gpu_others([None, None], own_pids={10})["other_processes"] is None


def test_probe_on_a_gpu_reports_the_other_process_and_flags_it():
    me = os.getpid()
    board = FakeBoard(processes=[_proc(me, 2**30), _proc(4321, 2**29)])
    gpu = NvmlGpu(0, nvml=FakeNvml([board]))
    probe = Interference(measure_cpu=False, gpu=gpu, gpu_label="0 NVIDIA H100 80GB HBM3")
    probe.begin()
    part = probe.end().sections["interference"]
    assert "cpu" not in part and part["gpu"]["device"] == "0 NVIDIA H100 80GB HBM3"
    assert part["gpu"]["other_processes"] == 1 and part["gpu"]["processes"][0]["pid"] == 4321
    sec = interference.section([part], Thresholds())
    assert sec["disturbed"] is True and "pids 4321" in sec["reason"]


# ---- the probe on a scripted /proc


def _pid_stat(pid: int, ppid: int, ticks: int) -> str:
    return f"{pid} (python3) S {ppid} " + " ".join(["0"] * 9 + [str(ticks), "0", "0", "0"] + ["0"] * 30)


def _fake_proc(root: Path, procs: dict[int, tuple[int, int, str]], stat: str, cpuinfo: str = "") -> Path:
    """procs: {pid: (ppid, ticks, cmdline)}."""
    for pid, (ppid, ticks, cmd) in procs.items():
        (root / str(pid)).mkdir(parents=True, exist_ok=True)
        (root / str(pid) / "stat").write_text(_pid_stat(pid, ppid, ticks))
        (root / str(pid) / "cmdline").write_text(cmd)
    (root / "stat").write_text(stat)
    (root / "cpuinfo").write_text(cpuinfo)
    (root / "self").mkdir(exist_ok=True)  # not a pid: ignored
    return root


def test_probe_counts_children_and_sibling_ranks_as_own_and_others_as_others(tmp_path):
    me, parent = os.getpid(), 999_001
    worker = "python\0-m\0harness.worker\0spec.json\0"

    def tree(t: int) -> dict:  # at t=1 every process has used more CPU
        return {
            parent: (1, 0, "torchrun\0"),
            me: (parent, 100 + 50 * t, worker),  # this rank: +50 ticks
            999_002: (parent, 100 + 40 * t, worker),  # its sibling rank: +40
            999_003: (me, 10 * t, "server\0"),  # a child of this rank: +10
            999_004: (parent, 5 + 1000 * t, "python\0other.py\0"),  # the agent's other child: not a rank
            999_005: (1, 70 * t, "busy\0"),  # unrelated: others
        }

    stat0 = proc_stat(stat_line("cpu0"), stat_line("cpu1"))
    stat1 = proc_stat(stat_line("cpu0", user=100, idle=100), stat_line("cpu1", user=100, idle=100))
    proc = _fake_proc(
        tmp_path / "proc", tree(0), stat0, "processor : 0\ncpu MHz : 2100.000\nprocessor : 1\ncpu MHz : 2300.0\n"
    )
    sys_cpu = tmp_path / "sys"
    sys_cpu.mkdir()
    probe = Interference(measure_cpu=True, ranks_on_node=2, proc=proc, sys_cpu=sys_cpu)
    probe.cores = [0, 1]
    probe.begin()
    _fake_proc(proc, tree(1), stat1, (proc / "cpuinfo").read_text())
    cpu = probe.end().sections["interference"]["cpu"]
    assert cpu["own_processes"] == 3  # this rank, its sibling rank, its child
    assert cpu["own_s"] == pytest.approx(1.0)  # 50 + 40 + 10 ticks
    assert cpu["busy_s"] == pytest.approx(2.0) and cpu["other_cpu_share"] == pytest.approx(100 / 400)
    assert cpu["cpu_freq_mhz_end"] == {"mean": 2200.0, "min": 2100.0, "max": 2300.0}
    assert cpu["cpu_freq_source"] == "/proc/cpuinfo cpu MHz" and cpu["window_s"] >= 0
    # a single rank: the sibling's 40 ticks are someone else's
    single = Interference(measure_cpu=True, ranks_on_node=1, proc=proc, sys_cpu=sys_cpu)
    stats = process_stats(proc)
    assert single._own()[0] == {me, 999_003} and siblings(stats, me, proc) == [999_002]


def test_cpufreq_is_preferred_over_cpuinfo(tmp_path):
    for c, khz in ((0, "1800000\n"), (1, "2400000\n")):
        (tmp_path / f"cpu{c}" / "cpufreq").mkdir(parents=True)
        (tmp_path / f"cpu{c}" / "cpufreq" / "scaling_cur_freq").write_text(khz)
    assert cpu_freq_mhz([0, 1], tmp_path / "noproc", tmp_path) == ({0: 1800.0, 1: 2400.0}, "cpufreq scaling_cur_freq")
    assert cpu_freq_mhz([0], tmp_path / "noproc", tmp_path / "nosys") == ({}, None)


def test_without_proc_stat_the_cpu_part_says_so(tmp_path):
    probe = Interference(measure_cpu=True, proc=tmp_path / "nothing")
    probe.begin()
    cpu = probe.end().sections["interference"]["cpu"]
    assert cpu["note"].startswith("/proc/stat not readable") and "other_cpu_share" not in cpu
    assert interference.section([{"cpu": cpu}], Thresholds())["disturbed"] is None


def test_for_device_wires_the_probe_on_every_rank_cpu_on_local_rank_0():
    from harness import probes
    from harness.distributed import Place

    device = SimpleNamespace(type="cpu")
    cfg = {"energy": {"enabled": False}}
    (first,) = [p for p in probes.for_device(cfg, device, Place()).probes if p.name == "interference"]
    (other,) = [p for p in probes.for_device(cfg, device, Place(1, 1, 2, 2)).probes if p.name == "interference"]
    assert first.measure_cpu and first.ranks_on_node == 1 and first.rank == 0
    assert not other.measure_cpu and other.ranks_on_node == 2 and other.rank == 1


# ---- config


def _cfg(**interference_values):
    cfg = HarnessConfig(model=ModelConfig(name="t"), precision=PrecisionConfig(name="fp32"), sweep="s")
    cfg.workload = InferenceWorkload(name="inference")  # what conf/workload/inference.yaml composes
    for k, v in interference_values.items():
        setattr(cfg.interference, k, v)
    return cfg


@pytest.mark.parametrize(
    "key, accepted, refused, rule",
    [
        ("max_other_cpu_share", 1.0, 1.001, "must be between 0 and 1 (a share of the cores' time)"),
        ("max_other_cpu_share", 0.0, -0.001, "must be between 0 and 1 (a share of the cores' time)"),
        ("max_steal_share", 1.0, 1.5, "must be between 0 and 1 (a share of the cores' time)"),
        ("max_other_gpu_processes", 0, -1, "must be >= 0"),
    ],
)
def test_thresholds_are_validated(key, accepted, refused, rule):
    validate(_cfg(**{key: accepted}))
    with pytest.raises(ConfigError) as err:
        validate(_cfg(**{key: refused}))
    assert str(err.value) == f"interference.{key}={refused} is not valid: {rule}"


def test_thresholds_do_not_change_the_config_hash():
    a, b = make(), make("interference.max_other_cpu_share=0.5")
    assert a["config"]["interference"] != b["config"]["interference"] and a["config_hash"] == b["config_hash"]


# ---- the summary and the report say so


def _disturbed(*overrides, share=0.6):
    part = {"cpu": {"n_cores": 2, "other_cpu_share": share, "steal_share": 0.0}}
    sec = interference.section([part], Thresholds())
    warning = interference.warning(sec)
    return make(*overrides, sections={"interference": sec, "warnings": [warning] if warning else []})


def test_summary_marks_disturbed_runs_and_lists_them():
    calm, busy = _disturbed(share=0.01), _disturbed("batch_size=4")
    text = summary.table([calm, busy])
    rows = {line.split("  ")[0]: line for line in text.splitlines() if line.startswith("tiny")}
    assert "ok (disturbed)" in rows["tiny fp32 bs=4 seq=128 gpus=1"]
    assert "disturbed" not in rows["tiny fp32 bs=1 seq=128 gpus=1"]
    assert (
        "disturbed: 1 run(s) measured while other load ran beside them:\n  tiny fp32 bs=4 seq=128 gpus=1: other" in text
    )
    assert summary.headline_line(busy).endswith("(DISTURBED: see its warnings)")
    assert "DISTURBED" not in summary.headline_line(calm)


def test_report_marks_rows_and_points_and_lists_disturbed_runs_at_the_top(tmp_path):
    from gate_helpers import write

    from harness.report import build

    write(tmp_path / "s", _disturbed(share=0.01), _disturbed("batch_size=4"), make("batch_size=2"))
    html = build([tmp_path / "s"], out_dir=tmp_path / "r").read_text()
    note = html[html.index('<div class="note" id="disturbed">') :]
    note = note[: note.index("</div>")]
    assert "<b>1 disturbed run(s)</b>" in note and "s: tiny fp32 bs=4 seq=128 gpus=1: other processes used 60%" in note
    answer = html[html.index('<div class="answer">') :]
    assert (
        "Not recommended: 1 disturbed (measured beside other load) (tiny fp32 bs=4" in answer[: answer.index("</div>")]
    )
    runs = html[html.index('<table class="runs" ') :]
    runs = runs[: runs.index("</table>")]
    classes = re.findall(r'<tr class="([^"]*)"><td data-v="tiny fp32', runs)
    assert sum("disturbed" in c for c in classes) == 1 and len(classes) == 3
    headers = re.findall(r"<th>([^<]*)</th>", runs[: runs.index("</thead>")])
    col = headers.index("disturbed")
    cells = [re.findall(r"<td[^>]*>([^<]*)</td>", row)[col] for row in re.findall(r"<tr class=[^>]*>(.*?)</tr>", runs)]
    assert sorted(cells) == ["no", "yes", "–"]  # flagged, measured and calm, not measured (no section)
    import pandas as pd

    frame = pd.read_csv(tmp_path / "r" / "runs.csv")
    assert frame["disturbed"].tolist().count(True) == 1 and frame["disturbed_reason"].notna().sum() == 1
