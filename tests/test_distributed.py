"""Training on several processes through Accelerate, proved with two CPU processes (`torchrun`, Accelerate's MULTI_CPU
over gloo): each process trains on its own share of every batch, the gradients are the global batch's, CLIP's loss
is the same loss, and only the main process writes."""
import os, socket, subprocess, sys
from pathlib import Path
import pytest, torch

HERE = Path(__file__).parent / 'distributed'

def free_port():
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def run(args, processes: int, cwd):
    env = dict(os.environ, ACCELERATE_USE_CPU='true', OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1')
    launch = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', str(processes), '--master_port', str(free_port())] if processes > 1 else [sys.executable]
    r = subprocess.run(launch + [str(a) for a in args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return r

def test_two_processes_share_each_batch_and_step_as_one(tmp_path):
    (tmp_path / 'one').mkdir(); (tmp_path / 'two').mkdir()
    run([HERE / 'fit_probe.py', tmp_path / 'one'], 1, tmp_path)
    run([HERE / 'fit_probe.py', tmp_path / 'two'], 2, tmp_path)
    one = torch.load(tmp_path / 'one' / 'probesingle.pt')
    two = [torch.load(tmp_path / 'two' / f'probe{r}.pt') for r in (0, 1)]
    for step in range(2):  # disjoint shares that make up the global batch
        a, b = two[0]['seen'][step], two[1]['seen'][step]
        assert not set(a) & set(b) and sorted(a + b) == one['seen'][step] and len(a) == len(b)
    for g1, g2a, g2b in zip(one['grads'], *[t['grads'] for t in two]):  # each step's gradient: the global batch's
        for x, y, z in zip(g1, g2a, g2b): torch.testing.assert_close(y, x, atol=1e-6, rtol=1e-5); assert torch.equal(y, z)
    torch.testing.assert_close(two[0]['weight'], one['weight'], atol=1e-6, rtol=1e-5)
    assert two[0]['losses'] == pytest.approx(one['losses'], abs=1e-6)  # the logged loss is the global batch's
    # one copy of every file: the checkpoint holds one model, one optimiser (and each process's random state)
    state = sorted(p.name for p in (tmp_path / 'two' / 'ckpt' / 'state').iterdir())
    assert state == ['model.safetensors', 'optimizer.bin', 'random_states_0.pkl', 'random_states_1.pkl', 'scheduler.bin']

def test_clip_loss_is_the_same_on_two_processes(tmp_path):
    run([HERE / 'clip_probe.py', tmp_path], 1, tmp_path)
    run([HERE / 'clip_probe.py', tmp_path], 2, tmp_path)
    one, two = torch.load(tmp_path / 'clipsingle.pt'), [torch.load(tmp_path / f'clip{r}.pt') for r in (0, 1)]
    # every caption against every picture of the global batch (gathered), so the loss and its gradients match one process's
    assert two[0]['loss'] == pytest.approx(one['loss'], abs=1e-5) and two[1]['loss'] == pytest.approx(one['loss'], abs=1e-5)
    for k, g in one['grads'].items(): torch.testing.assert_close(two[0]['grads'][k], g, atol=1e-5, rtol=1e-4)

def test_train_tiny_quick_on_two_processes_writes_each_file_once(tmp_path):
    r = run([subprocess.check_output(['which', 'sdfound'], text=True).strip(), 'train', 'tiny', '--quick', '--out', tmp_path / 'run'], 2, tmp_path)
    assert r.stdout.count('trained in') == 1  # one process speaks
    files = sorted(str(p.relative_to(tmp_path / 'run')) for p in (tmp_path / 'run').rglob('*') if p.is_file())
    assert 'tiny/unet/diffusion_pytorch_model.safetensors' in files and 'report.json' in files
    assert [f for f in files if 'random_states' not in f and ('_1' in f or 'rank' in f)] == []
    from diffusers import StableDiffusionPipeline
    pipe = StableDiffusionPipeline.from_pretrained(tmp_path / 'run' / 'tiny', dtype=torch.float32, safety_checker=None, requires_safety_checker=False)
    assert pipe('a red 7', num_inference_steps=2, generator=torch.Generator().manual_seed(0)).images[0].size == (64, 64)
