"""``bau sweep --launcher {slurm, submitit-local}`` (``bau.engine.cluster``) and ``--status``
(``bau.engine.sweep_status``).

The submitit-local path runs end to end here (a real job signalled mid-run and requeued); the Slurm
path is checked up to ``sbatch``, which a fake ``sbatch`` on PATH records instead of a cluster.
"""
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time

import pytest
import torch
import yaml

from bau.cli import main
from bau.core.errors import BauError
from tests.helpers import tiny_overrides

pytestmark = pytest.mark.integration

pytest.importorskip("submitit")

RUN_A, RUN_B = "aug_prob-0.0", "aug_prob-1.0"


def _sweep_file(tmp_path, root, **extra):
    base = tmp_path / "base.yaml"
    base.write_text("model:\n  backbone: mobilenetv2\n")
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({
        "base": "base.yaml",
        "overrides": tiny_overrides(root, **{"train.epochs": 3, "train.iters_per_epoch": 3, "train.threads": 1,
                                             **extra}),
        "grids": [{"data.aug_prob": [0.0, 1.0]}],
    }, sort_keys=False))
    return str(path)


def _step_records(run_dir):
    with open(os.path.join(run_dir, "log.jsonl")) as f:
        return [r for r in map(json.loads, f) if r["event"] == "step"]


def _wait_for(predicate, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def test_submitit_local_sweep_requeues_a_signalled_run_and_resumes_it_exactly(tiny_synth, tmp_path):
    path = _sweep_file(tmp_path, tiny_synth)
    out = tmp_path / "sweep"
    env = dict(os.environ, PYTHONPATH=os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", ""))
    sweep = subprocess.Popen([sys.executable, "-m", "bau", "sweep", "--config", path, "--out", str(out),
                              "--launcher", "submitit-local", "--quiet"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        run_a = str(out / RUN_A)

        def in_epoch_2():
            try:
                return any(r["epoch"] == 2 for r in _step_records(run_a))
            except (OSError, ValueError, KeyError):
                return False

        _wait_for(in_epoch_2, 300, "run A's first step of epoch 2")
        pid = json.load(open(os.path.join(run_a, ".lock")))["pid"]  # the job's training process
        os.kill(pid, signal.SIGSTOP)
        try:
            steps_at_signal = len(_step_records(run_a))
            assert not os.path.exists(os.path.join(run_a, "results.json")), "signalled too late: run A had finished"
            os.kill(pid, signal.SIGUSR2)  # what Slurm sends before the time limit (and submitit-local at timeout)
        finally:
            os.kill(pid, signal.SIGCONT)
        output, _ = sweep.communicate(timeout=600)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert sweep.returncode == 0, output
    assert "submitted as job" in output and f"{RUN_A}: finished" in output and f"{RUN_B}: finished" in output

    # run A was requeued by submitit's checkpoint hook and resumed from its last.pt
    submitted = json.load(open(out / "jobs.json"))
    job_a = submitted[RUN_A]["job_id"]
    job_log = (out / ".submitit" / f"{job_a}_0_log.out").read_text()
    assert f"Requeued job {job_a}" in job_log and "resuming" in job_log and "after epoch 1" in job_log
    assert 4 <= steps_at_signal < 9
    steps = [r["step"] for r in _step_records(run_a)]
    assert steps == list(range(1, 10))  # no logged step repeated or lost
    assert json.load(open(os.path.join(run_a, "job.json")))["state"] == "finished"

    # its final weights equal an uninterrupted run's (same config, same seed, CPU)
    from bau.engine.sweep import run_sweep
    from bau.runs.checkpoint import load_checkpoint

    ref = tmp_path / "reference"
    run_sweep(path, str(ref), progress=False, only=[RUN_A], echo=lambda s: None)
    got = load_checkpoint(os.path.join(run_a, "last.pt"))["model"]
    want = load_checkpoint(str(ref / RUN_A / "last.pt"))["model"]
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)

    # --status: both finished, with their job ids and last logged steps
    from bau.engine.sweep_status import sweep_rows

    rows = {r["run"]: r for r in sweep_rows(str(out))}
    assert rows[RUN_A] == {"run": RUN_A, "state": "finished", "job": job_a, "step": 9, "detail": ""}
    assert rows[RUN_B]["state"] == "finished" and rows[RUN_B]["job"] == submitted[RUN_B]["job_id"]


def _fake_slurm(tmp_path, monkeypatch):
    """``sbatch`` that keeps the submission file and answers like Slurm; ``srun`` only has to exist."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(f"#!/bin/sh\ncp \"$1\" {tmp_path}/submitted.sh\necho Submitted batch job 4242\n")
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    for name in ("sbatch", "srun"):
        (bin_dir / name).chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return tmp_path / "submitted.sh"


def test_slurm_launcher_submits_one_job_array_with_the_options(tiny_synth, tmp_path, monkeypatch, capsys):
    submitted = _fake_slurm(tmp_path, monkeypatch)
    path = _sweep_file(tmp_path, tiny_synth)
    data = yaml.safe_load(open(path))
    data["launcher"] = {"type": "slurm", "partition": "gpu", "gpus-per-run": 8, "nodes_per_run": 2, "mem": "64G"}
    with open(path, "w") as f:
        yaml.safe_dump(data, f)
    out = tmp_path / "sweep"
    assert main(["sweep", "--config", path, "--out", str(out), "--cpus-per-gpu", "6", "--time", "2-00:00:00",
                 "--array-parallelism", "1", "--sbatch", "qos=high", "--sbatch", "account=reid"]) == 0
    text = submitted.read_text()
    for line in ("#SBATCH --partition=gpu", "#SBATCH --nodes=2", "#SBATCH --gpus-per-node=4",
                 "#SBATCH --ntasks-per-node=4", "#SBATCH --cpus-per-task=6", "#SBATCH --mem=64G",
                 "#SBATCH --time=2880", "#SBATCH --array=0-1%1", "#SBATCH --signal=USR2@120",
                 "#SBATCH --qos=high", "#SBATCH --account=reid"):
        assert line in text, line
    assert "submitted as job 4242_0" in capsys.readouterr().out
    from bau.engine.sweep_status import sweep_rows

    rows = sweep_rows(str(out))
    assert [(r["state"], r["job"]) for r in rows] == [("queued", "4242_0"), ("queued", "4242_1")]
    # a second `bau sweep` does not submit queued runs again
    submitted.unlink()
    assert main(["sweep", "--config", path, "--out", str(out)]) == 0
    assert not submitted.exists() and "queued (job 4242_0), not submitted again" in capsys.readouterr().out


def test_status_shows_every_state_with_job_ids_steps_and_errors(tmp_path, capsys):
    from bau.engine.cluster import JOBS_FOLDER, write_job_state
    from bau.engine.sweep_status import sweep_rows

    out = tmp_path / "sweep"
    names = ["pending", "queued", "running", "preempted", "finished", "failed", "killed", "interrupted"]
    out.mkdir()
    (out / "sweep.yaml").write_text(yaml.safe_dump({"runs": [{"name": n} for n in names]}))
    folder = out / JOBS_FOLDER
    folder.mkdir()
    jobs = {n: {"job_id": f"77_{i}", "launcher": "slurm", "folder": str(folder)}
            for i, n in enumerate(names) if n not in ("pending", "interrupted")}
    (out / "jobs.json").write_text(json.dumps(jobs))
    for n in names:
        (out / n).mkdir()
    log = "".join(json.dumps({"event": "step", "epoch": 1, "step": s}) + "\n" for s in (1, 2, 3))
    for n in ("running", "preempted", "failed", "killed", "interrupted"):
        (out / n / "log.jsonl").write_text(log + "not json\n")
    for n in ("preempted", "interrupted"):
        (out / n / "last.pt").write_bytes(b"x")
    (out / "finished" / "results.json").write_text('{"finished": true}')
    (out / "running" / ".lock").write_text(json.dumps({"host": "node3", "pid": 9, "job_id": "77_2",
                                                       "heartbeat": time.time(), "since": "now"}))
    write_job_state(str(out / "preempted"), "preempted", job_id="77_3")
    write_job_state(str(out / "failed"), "failed", job_id="77_5", error="CUDA out of memory. Tried to allocate 2 GiB")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / "killed" / "job.json").write_text(json.dumps({"state": "running", "job_id": "77_6", "pid": dead.pid,
                                                         "host": socket.gethostname(), "updated": time.time()}))
    (folder / "77_6_0_log.err").write_text("submitit INFO (x) - Starting\nslurmstepd: error: Detected 1 oom_kill\n")
    rows = {r["run"]: r for r in sweep_rows(str(out))}
    assert {n: rows[n]["state"] for n in names} == {
        "pending": "pending", "queued": "queued", "running": "running", "preempted": "preempted",
        "finished": "finished", "failed": "failed", "killed": "failed", "interrupted": "preempted"}
    assert rows["running"]["job"] == "77_2" and rows["running"]["step"] == 3 and "node3" in rows["running"]["detail"]
    assert rows["failed"]["detail"] == "CUDA out of memory. Tried to allocate 2 GiB"
    assert rows["killed"]["detail"].endswith("slurmstepd: error: Detected 1 oom_kill")
    assert rows["pending"]["step"] is None and rows["queued"]["job"] == "77_1"
    assert main(["sweep", "--status", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "1 pending, 1 queued, 1 running, 2 preempted, 1 finished, 2 failed" in printed
    assert main(["sweep", "--status", "--out", str(tmp_path)]) == 2
    assert "no sweep.yaml there" in capsys.readouterr().err


def test_rank_environment_from_a_slurm_job(monkeypatch):
    import submitit

    from bau.engine.cluster import rank_environment

    for k, v in {"SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": "555", "SLURM_NTASKS": "8",
                 "SLURM_JOB_NUM_NODES": "2", "SLURM_JOB_NODELIST": "gpu[07-08]", "SLURM_PROCID": "5",
                 "SLURM_LOCALID": "1", "SLURM_NODEID": "1"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    env = rank_environment(submitit.JobEnvironment())
    assert {k: env[k] for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR")} == {
        "RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4", "MASTER_ADDR": "gpu07"}
    monkeypatch.setenv("SLURM_PROCID", "0")
    assert rank_environment(submitit.JobEnvironment())["MASTER_PORT"] == env["MASTER_PORT"]  # every rank agrees
    assert 20000 <= int(env["MASTER_PORT"]) < 60000


def test_bad_launcher_options_are_one_line(tiny_synth, tmp_path, capsys):
    path = _sweep_file(tmp_path, tiny_synth)
    out = str(tmp_path / "sweep")
    for args, message in [
        (["--launcher", "submitit-local", "--time", "soon"], "--time 'soon': expected minutes or D-HH:MM:SS"),
        (["--launcher", "submitit-local", "--mem", "lots"], "--mem 'lots': expected memory per node"),
        (["--launcher", "slurm", "--gpus-per-run", "3", "--nodes-per-run", "2"], "same number of GPUs on every"),
        (["--launcher", "submitit-local", "--jobs", "2"], "--jobs 2: only for --launcher local"),
        (["--launcher", "submitit-local", "--nodes-per-run", "2"], "runs on this machine only"),
    ]:
        assert main(["sweep", "--config", path, "--out", out, *args]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1, err
    data = yaml.safe_load(open(path))
    data["launcher"] = {"type": "slurm", "gpu": 1}
    with open(path, "w") as f:
        yaml.safe_dump(data, f)
    with pytest.raises(BauError, match="launcher: unknown key 'gpu'"):
        from bau.engine.sweep import run_sweep

        run_sweep(path, out)


def test_missing_submitit_names_the_extra(tiny_synth, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "submitit", None)  # `import submitit` now raises ImportError
    path = _sweep_file(tmp_path, tiny_synth)
    assert main(["sweep", "--config", path, "--out", str(tmp_path / "s"), "--launcher", "submitit-local"]) == 2
    err = capsys.readouterr().err
    assert "needs the submitit package" in err and "pip install bau[cluster]" in err
    assert len(err.strip().splitlines()) == 1
