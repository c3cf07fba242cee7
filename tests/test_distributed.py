"""Training on several processes through Accelerate, proved with two CPU processes (`torchrun`, Accelerate's MULTI_CPU
over gloo): each process trains on its own share of every batch, DistributedDataParallel makes the gradients the
global batch's, CLIP's loss is the same loss, Dreambooth's LoRA and a resumed run come out as on one process, and
only the main process writes. `distributed/probe.py` records all of it in one launch per process count."""
import os, socket, subprocess, sys
from pathlib import Path
import pytest, torch
from conftest import made_once

HERE = Path(__file__).parent / 'distributed'

def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]

def run(args, processes: int, cwd):
    env = dict(os.environ, ACCELERATE_USE_CPU='true', OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1')
    launch = [sys.executable]
    if processes > 1:
        launch += ['-m', 'torch.distributed.run', '--nproc_per_node', str(processes), '--master_port', str(free_port())]
    r = subprocess.run(launch + [str(a) for a in args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return r

@pytest.fixture(scope='module')
def probes(tmp_path_factory):
    "What `probe.py` recorded on one process, and on each of two."
    def launch(tmp):
        for name, processes in (('one', 1), ('two', 2)):
            (tmp / name).mkdir()
            run([HERE / 'probe.py', tmp / name], processes, tmp)
    tmp = made_once(tmp_path_factory, 'distributed-probes', launch)
    return tmp, torch.load(tmp / 'one' / 'probesingle.pt'), [torch.load(tmp / 'two' / f'probe{r}.pt') for r in (0, 1)]

def close(a, b, atol=1e-6, rtol=1e-5): torch.testing.assert_close(a, b, atol=atol, rtol=rtol)

def test_two_processes_share_each_batch_and_step_as_one(probes):
    tmp, one, two = probes
    one, two = one['fit'], [t['fit'] for t in two]
    for step in range(2):  # disjoint shares that make up the global batch
        a, b = two[0]['seen'][step], two[1]['seen'][step]
        assert not set(a) & set(b) and sorted(a + b) == one['seen'][step] and len(a) == len(b)
    for g1, g2a, g2b in zip(one['grads'], *[t['grads'] for t in two]):  # each step's gradient: the global batch's
        for x, y, z in zip(g1, g2a, g2b):
            close(y, x)
            assert torch.equal(y, z)
    close(two[0]['weight'], one['weight'])
    assert two[0]['losses'] == pytest.approx(one['losses'], abs=1e-6)  # the logged loss is the global batch's
    # one copy of every file: the checkpoint holds one model, one optimiser (and each process's random state)
    state = sorted(p.name for p in (tmp / 'two' / 'ckpt' / 'state').iterdir())
    assert state == ['model.safetensors', 'optimizer.bin', 'random_states_0.pkl', 'random_states_1.pkl', 'scheduler.bin']

def test_clip_loss_is_the_same_on_two_processes(probes):
    _, one, two = probes
    one, two = one['clip'], [t['clip'] for t in two]
    # every caption against every picture of the global batch (gathered), so the loss and its gradients match
    assert two[0]['loss'] == pytest.approx(one['loss'], abs=1e-5) and two[1]['loss'] == pytest.approx(one['loss'], abs=1e-5)
    for k, g in one['grads'].items(): close(two[0]['grads'][k], g, atol=1e-5, rtol=1e-4)

def test_dreambooth_lora_trains_the_same_on_two_processes(probes):
    _, one, two = probes
    one, two = one['dreambooth'], [t['dreambooth'] for t in two]
    assert len(one['lora']) > 0 and one['lora'].keys() == two[0]['lora'].keys()
    for k, w in one['lora'].items():
        # Adam divides by the gradient's own size, so the summation order of two processes moves a small weight
        # by ~1e-6: the gradients' tolerance
        close(two[0]['lora'][k], w, atol=1e-5, rtol=1e-4)
        assert torch.equal(two[0]['lora'][k], two[1]['lora'][k])  # DDP keeps the processes' copies identical
    assert two[0]['loss'] == pytest.approx(one['loss'], abs=1e-5)

def test_a_run_resumed_on_two_processes_ends_as_an_uninterrupted_one(probes):
    _, one, two = probes
    for r in [one['resume']] + [t['resume'] for t in two]:
        for a, b in zip(r['straight'], r['resumed']): close(b, a)
        assert len(r['losses']) == 6
    for a, b in zip(one['resume']['straight'], two[0]['resume']['straight']): close(b, a)

def test_train_tiny_quick_on_two_processes_writes_each_file_once(tmp_path):
    sdfound = subprocess.check_output(['which', 'sdfound'], text=True).strip()
    r = run([sdfound, 'train', 'tiny', '--quick', '--out', tmp_path / 'run'], 2, tmp_path)
    assert r.stdout.count('trained in') == 1  # one process speaks
    files = sorted(str(p.relative_to(tmp_path / 'run')) for p in (tmp_path / 'run').rglob('*') if p.is_file())
    assert 'tiny/unet/diffusion_pytorch_model.safetensors' in files and 'report.json' in files
    assert [f for f in files if 'random_states' not in f and ('_1' in f or 'rank' in f)] == []
    from diffusers import StableDiffusionPipeline
    pipe = StableDiffusionPipeline.from_pretrained(tmp_path / 'run' / 'tiny', dtype=torch.float32, safety_checker=None,
                                                   requires_safety_checker=False)
    assert pipe('a red 7', num_inference_steps=2, generator=torch.Generator().manual_seed(0)).images[0].size == (64, 64)
