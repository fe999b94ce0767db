"""Where the networks run and how many threads a run takes: the learned methods' ``device``
option (CPU by default, ``auto`` resolved once, a device torch does not see refused in one
line), tensors kept on the network's device throughout inference (checked on the CPU with
CUDA's rules, :class:`FakeDevice`), and ``celltrail --threads N``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten
from typer.testing import CliRunner

from celltrail.batch import BatchJob, run_job
from celltrail.cli import build_app
from celltrail.core.errors import OptionError
from celltrail.core.sequence import ArraySequence, open_sequence
from celltrail.methods import METHODS
from celltrail.methods.base import prefetch_map
from celltrail.methods.boxtrack import BoxTracker
from celltrail.methods.boxtrack.backends import make_segmenter
from celltrail.methods.boxtrack.config import AdaptParams
from celltrail.methods.shared_options import DEFAULT_DEVICE
from celltrail.models.device import resolve_device
from celltrail.threads import available_cores, default_threads, set_threads, threads

#: The methods with a network, and what each needs beyond its defaults on the bundled sample.
LEARNED = {"boxtrack": {"backend": "learned", "adapt": False},
           "embedtrack": {"model": "Fluo-N2DH-GOWT1"}, "cap": {},
           "cellboxify": {"model": "Fluo-N2DH-SIM+_box"}}
#: Where each test's copy of the sample is cut: frames 0, 13, 26 and 39.
FRAME_STEP = "13"
runner = CliRunner()


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Torch sees neither CUDA nor MPS, whatever the machine."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.fixture
def thread_count() -> Iterator[None]:
    """Torch's threads and celltrail's setting as they were, after the test."""
    before = torch.get_num_threads()
    yield
    set_threads(None)
    torch.set_num_threads(before)


def short(sample: Path, frames: int = 3) -> ArraySequence:
    images = open_sequence(sample / "01")
    return ArraySequence(np.stack([images[t] for t in range(frames)]), name="01")


def test_learned_methods_run_on_the_cpu_unless_told() -> None:
    """Every method with a model has the option, defined once, CPU by default; the classical
    method has none, and the CLI offers it with its choices."""
    have = {name for name, method in METHODS.items()
            if "device" in {f.name for f in method.options.fields()}}
    assert have == {name for name, method in METHODS.items() if method.model_kind} == set(LEARNED)
    for name in LEARNED:
        field = next(f for f in METHODS[name].options.fields() if f.name == "device")
        assert (field.default, field.choices) == (DEFAULT_DEVICE, ("auto", "cpu", "cuda", "mps"))
    assert DEFAULT_DEVICE == "cpu"
    text = runner.invoke(build_app(), ["track", "--help"], env={"COLUMNS": "300"}).output
    assert "<auto|cpu|cuda|mps>" in text and "only cpu is tested. (default: cpu)" in text


def test_auto_takes_cuda_then_mps_then_the_cpu(no_gpu: None, monkeypatch: pytest.MonkeyPatch
                                               ) -> None:
    assert resolve_device("auto") == torch.device("cpu") == resolve_device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


@pytest.mark.parametrize(("name", "problem"), [
    ("cuda", "no CUDA device: torch.cuda.is_available() is False (a CPU build of torch, or no "
             "GPU driver); choose cpu or auto"),
    ("mps", "no MPS device: torch.backends.mps.is_available() is False (MPS needs Apple "
            "silicon); choose cpu or auto"),
    ("tpu", "must be one of auto, cpu, cuda, mps, not 'tpu'")])
def test_a_device_torch_does_not_see_is_refused(no_gpu: None, name: str, problem: str) -> None:
    with pytest.raises(OptionError) as err:
        resolve_device(name)
    assert (err.value.name, err.value.problem) == ("device", problem)


def test_cli_refuses_cuda_in_one_line_before_any_work(no_gpu: None, sample: Path,
                                                      tmp_path: Path) -> None:
    out = tmp_path / "res"
    result = runner.invoke(build_app(), ["track", str(sample / "01"), "--out", str(out),
                                         "--method", "cap", "--device", "cuda"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: --device: no CUDA device: torch.cuda.is_available() is False (a CPU build of "
        "torch, or no GPU driver); choose cpu or auto"]
    assert not out.exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--method", "classical", "--device", "cpu"],
     "error: --device: applies to method boxtrack, embedtrack, cap or cellboxify only, not "
     "classical"),
    (["--method", "boxtrack", "--backend", "classical", "--boxes-from-gt", "GT",
      "--device", "auto"], "error: --device: applies to the learned backend only")])
def test_device_is_refused_where_no_network_runs(sample: Path, tmp_path: Path, args: list[str],
                                                 message: str) -> None:
    args = [str(sample / "01_GT") if a == "GT" else a for a in args]
    result = runner.invoke(build_app(), ["track", str(sample / "01"), "--out",
                                         str(tmp_path / "res"), *args])
    assert (result.exit_code, result.stderr.strip().splitlines()) == (1, [message])


@pytest.mark.parametrize(("method", "message"), [
    ("cellboxify", "error: --device: no CUDA device: torch.cuda.is_available() is False (a CPU "
                   "build of torch, or no GPU driver); choose cpu or auto"),
    ("classical", "error: --device: applies to --method cellboxify only")])
def test_segment_takes_the_device_of_cellboxify(no_gpu: None, sample: Path, tmp_path: Path,
                                                method: str, message: str) -> None:
    model = ["--model", "Fluo-N2DH-SIM+_box"] if method == "cellboxify" else []
    result = runner.invoke(build_app(), ["segment", str(sample / "01"), "--out",
                                         str(tmp_path / "masks"), "--method", method, *model,
                                         "--device", "cuda"])
    assert (result.exit_code, result.stderr.strip().splitlines()) == (1, [message])
    assert not (tmp_path / "masks").exists()


def test_auto_runs_on_the_cpu_here_and_says_so(no_gpu: None, sample: Path, tmp_path: Path,
                                               thread_count: None) -> None:
    result = runner.invoke(build_app(), ["track", str(sample / "01"), "--out",
                                         str(tmp_path / "res"), "--method", "cap",
                                         "--frame-step", FRAME_STEP, "--device", "auto"])
    assert result.exit_code == 0, result.output
    assert "device: cpu (auto)" in result.stderr.splitlines()


class DeviceMixup(AssertionError):
    """A tensor on the device met one on the CPU, or went to numpy without ``.cpu()``."""


ON_DEVICE = "_on_fake_device"
#: Operations that may take tensors from both sides: an index on the CPU, copies and moves.
CROSSING = ("__getitem__", "__setitem__", "to", "cpu", "copy_", "__deepcopy__")


def on_device(value: object) -> bool:
    return isinstance(value, torch.Tensor) and getattr(value, ON_DEVICE, False)


class FakeDevice(TorchFunctionMode):
    """CUDA's rules played on the CPU. A tensor is "on the device" when ``.to(device)`` put it
    there (networks' parameters and buffers too), when a factory made it with ``device=``, or
    when it was computed from one that is (an indexed tensor: from the tensor, not the index);
    ``.cpu()`` gives one that is not. As on a GPU, an operation may not mix the two (a CPU
    scalar aside; a tensor on the device may be indexed by one on the CPU, not the other way
    round), and only a tensor off the device goes to numpy."""

    def __torch_function__(self, func: Any, types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        tensors = [x for x in tree_flatten((args, kwargs))[0] if isinstance(x, torch.Tensor)]
        check(name, args, tensors)
        out = func(*args, **kwargs)
        if name == "cpu":
            return out.view_as(out)  # a new tensor, off the device
        if name == "__getitem__":
            there = on_device(args[0])
        else:
            moved = name == "to" and any(isinstance(a, torch.device)
                                         for a in (*args[1:], *kwargs.values()))
            there = (moved or kwargs.get("device") is not None
                     or any(map(on_device, tensors)))
        if there:
            for x in tree_flatten(out)[0]:
                if isinstance(x, torch.Tensor):
                    setattr(x, ON_DEVICE, True)
        return out


def check(name: str, args: tuple, tensors: list[torch.Tensor]) -> None:
    """Raise :class:`DeviceMixup` where a GPU would refuse operation ``name``."""
    if name in ("numpy", "__array__") and on_device(args[0]):
        raise DeviceMixup(f"{name}() of a tensor on the device")
    if (name == "__getitem__" and not on_device(args[0]) and args[0].dim() > 0
            and any(map(on_device, tensors[1:]))):
        raise DeviceMixup("a tensor on the CPU indexed by one on the device")
    checked = [] if name in CROSSING else tensors
    if name == "__setitem__":  # the index aside
        checked = [x for x in (args[0], args[-1]) if isinstance(x, torch.Tensor)]
    if any(map(on_device, checked)) and any(not on_device(x) and x.dim() > 0 for x in checked):
        raise DeviceMixup(f"{name} mixes tensors on the device and on the CPU: "
                          f"{[(tuple(x.shape), on_device(x)) for x in checked]}")


def test_fake_device_catches_what_a_gpu_refuses() -> None:
    """The check itself: each mistake the learned methods must not make raises."""
    with FakeDevice():
        net = torch.nn.Linear(3, 2).to(torch.device("cpu"))
        x = torch.from_numpy(np.ones((1, 3), np.float32))
        with pytest.raises(DeviceMixup, match="linear mixes"):
            net(x)
        y = net(x.to(torch.device("cpu")))
        with pytest.raises(DeviceMixup, match="numpy"):
            y.numpy()
        with pytest.raises(DeviceMixup, match="mul mixes"):
            y * torch.ones(2)
        assert y.detach().cpu().numpy().shape == (1, 2)
        assert (y * torch.ones(2, device=y.device)).shape == (1, 2)
        assert (y * torch.tensor(2.0)).shape == (1, 2)  # a CPU scalar is allowed
        assert y[torch.tensor([0])].shape == (1, 2)  # so is a CPU index
        with pytest.raises(DeviceMixup, match="indexed by one on the device"):
            torch.ones(3)[y[0] > 0]


@pytest.mark.parametrize("name", sorted(LEARNED))
def test_inference_keeps_tensors_on_the_device(name: str, sample: Path) -> None:
    """Built and run under :class:`FakeDevice`, every learned tracker keeps its tensors on its
    device (BoxTrack also adapting and calibrating on the prompted frame) and tracks."""
    with FakeDevice():
        if name == "boxtrack":
            tracker = BoxTracker(segmenter=make_segmenter(
                "auto", adapt=AdaptParams(steps=2), device=resolve_device("cpu")))
        else:
            tracker = METHODS[name].load(**LEARNED[name])
        result = tracker.track(short(sample, 2), sample / "01_GT" if name == "boxtrack" else None)
    assert result.errors() == [] and len(result.lineage) > 0


def test_threads_reach_torch_and_are_refused_below_one(sample: Path, tmp_path: Path,
                                                       thread_count: None) -> None:
    torch.set_num_threads(2)
    result = runner.invoke(build_app(), ["--threads", "1", "track", str(sample / "01"), "--out",
                                         str(tmp_path / "res"), "--method", "embedtrack",
                                         "--model", "Fluo-N2DH-GOWT1",
                                         "--frame-step", FRAME_STEP])
    assert result.exit_code == 0, result.output
    assert torch.get_num_threads() == 1 == threads()
    for bad in ("0", "-2"):
        result = runner.invoke(build_app(), ["--threads", bad, "track", str(sample / "01"),
                                             "--out", str(tmp_path / "other")])
        assert (result.exit_code, result.stderr.strip().splitlines()) == (
            1, [f"error: --threads: must be a whole number of at least 1, not {bad}"])
    assert not (tmp_path / "other").exists()


def test_classical_workers_follow_the_thread_setting(sample: Path, tmp_path: Path,
                                                     thread_count: None,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """One worker thread with ``--threads 1``; three at once with ``set_threads(3)`` (each
    waits for the other two)."""
    from celltrail.segmentation import Segmenter

    workers: set[str] = set()
    segment = Segmenter.__call__

    def recorded(self: Segmenter, image: np.ndarray) -> np.ndarray:
        workers.add(threading.current_thread().name)
        return segment(self, image)

    monkeypatch.setattr(Segmenter, "__call__", recorded)
    result = runner.invoke(build_app(), ["--threads", "1", "track", str(sample / "01"), "--out",
                                         str(tmp_path / "res"), "--frame-step", "4"])
    assert result.exit_code == 0, result.output
    assert len(workers) == 1
    set_threads(3)
    together = threading.Barrier(3, timeout=30)

    def meet(i: int) -> int:
        together.wait()  # broken, after the timeout, unless three threads run at once
        return i

    assert list(prefetch_map(meet, range(6))) == list(range(6))


def test_default_threads_are_the_cores_this_process_may_use(
        monkeypatch: pytest.MonkeyPatch, thread_count: None) -> None:
    set_threads(None)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads() == default_threads() == available_cores() >= 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # as a dask worker's (1) is honoured
    assert threads() == 3
    with pytest.raises(OptionError) as err:
        set_threads(1.5)  # type: ignore[arg-type]
    assert str(err.value) == "threads: must be a whole number of at least 1, not 1.5"


def test_a_batch_job_runs_with_the_threads_it_is_given(sample: Path, tmp_path: Path,
                                                       thread_count: None) -> None:
    torch.set_num_threads(2)
    job = BatchJob(sample / "01", tmp_path / "res", frame_step=13)
    assert run_job(job, threads=1)["status"] == "done"
    assert torch.get_num_threads() == 1 == threads()
