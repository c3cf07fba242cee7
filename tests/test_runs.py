"""Run folders and checkpoints: a finished run never pretends to resume under another recipe, seed, model or sdfound
version (it names what differs and touches nothing); `--restart` / `restart=True` is the way to begin again; and no
checkpoint file can run code when a run resumes."""
import json, os, pickle
from pathlib import Path
import pytest, torch
from conftest import cut_at, made_once, run_cli as cli

def snapshot(folder: Path) -> dict:
    "Every file under `folder` and its bytes."
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob('*')) if p.is_file()}

@pytest.fixture(scope='module')
def finished_run(tmp_path_factory):
    "A finished `sdfound train tiny --quick` run, made once per test run; each test works on its own copy."
    def train(folder):
        r = cli('train', 'tiny', '--quick', '--out', folder / 'run')
        assert r.returncode == 0, r.stderr[-2000:]
    return made_once(tmp_path_factory, 'finished-quick-run', train) / 'run'

@pytest.fixture
def run1(finished_run, tmp_path):
    import shutil
    shutil.copytree(finished_run, tmp_path / 'run1')
    return tmp_path / 'run1'

@pytest.mark.parametrize('args,named', [(['--quick', '--seed', '5'], 'seed 0 (now 5)'),
                                        ([], 'unet_steps 3 (now 6000)')])
def test_a_finished_run_refuses_another_recipe_and_keeps_everything(run1, args, named):
    before = snapshot(run1)
    r = cli('train', 'tiny', *args, '--out', run1)
    assert r.returncode == 2 and named in r.stderr and '--restart' in r.stderr and 'Traceback' not in r.stderr
    assert r.stderr.count('\n') == 1 and snapshot(run1) == before  # one line, and not a byte changed

def test_a_run_folder_without_a_record_is_refused_with_the_same_hint(run1):
    (run1 / 'run.json').unlink()
    r = cli('train', 'tiny', '--quick', '--out', run1)
    assert r.returncode == 2 and 'no run record' in r.stderr and '--restart' in r.stderr

def test_another_sdfound_version_is_refused(run1):
    record = json.loads((run1 / 'run.json').read_text())
    (run1 / 'run.json').write_text(json.dumps(dict(record, sdfound_version='0.1.0')))
    r = cli('train', 'tiny', '--quick', '--out', run1)
    assert r.returncode == 2 and 'sdfound 0.1.0 (now' in r.stderr

def test_restart_discards_the_old_run_and_trains_the_new_recipe(run1):
    r = cli('train', 'tiny', '--quick', '--seed', '5', '--restart', '--out', run1)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((run1 / 'report.json').read_text())['recipe']['seed'] == 5
    assert json.loads((run1 / 'run.json').read_text())['recipe']['seed'] == 5

def test_restart_deletes_nothing_that_is_not_a_run(tmp_path):
    (tmp_path / 'thesis.tex').write_text('years of work')
    r = cli('train', 'tiny', '--quick', '--restart', '--out', tmp_path)
    assert r.returncode == 2 and 'not deleting' in r.stderr and (tmp_path / 'thesis.tex').exists()

def _fit(folder, model=None, fail_at=None, **kw):
    from sdfound.train import fit
    torch.manual_seed(0)
    model = model or torch.nn.Linear(2, 1)
    batches = cut_at(lambda step: dict(x=torch.ones(4, 2)), fail_at)  # fail_at: a run cut short
    options = dict(steps=6, lr=0.1, warmup=1, ckpt_every=2, progress=False, ckpt_dir=folder) | kw
    return fit(model, lambda m, b: m(b['x']).pow(2).mean(), batches, **options)

@pytest.mark.parametrize('change,named', [(dict(model=torch.nn.Linear(3, 1)), 'model'), (dict(steps=8), 'steps 6 (now 8)'),
                                          (dict(lr=0.5), 'lr 0.1 (now 0.5)')])
def test_fit_refuses_to_resume_another_run(tmp_path, change, named):
    with pytest.raises(KeyboardInterrupt): _fit(tmp_path, fail_at=3)
    before = snapshot(tmp_path)
    model = change.pop('model', None)
    if model is not None: change = dict(model=model)
    with pytest.raises(ValueError, match='saved by another run') as e: _fit(tmp_path, **change)
    assert named in str(e.value) and snapshot(tmp_path) == before

def test_a_checkpoint_cannot_run_code(tmp_path):
    "Pickles planted in a checkpoint folder (as its optimiser, its random state and a custom object) run nothing."
    marker = tmp_path / 'pwned'
    class Exploit:
        def __reduce__(self): return (os.system, (f'touch {marker}',))
    with pytest.raises(KeyboardInterrupt): _fit(tmp_path / 'ckpt', fail_at=3, ema=0.9)
    state = tmp_path / 'ckpt' / 'state'
    for name in ('optimizer.bin', 'random_states_0.pkl', 'custom_checkpoint_0.pkl'):
        (state / name).write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(ValueError, match='cannot resume .* holds more than tensors'): _fit(tmp_path / 'ckpt', ema=0.9)
    assert not marker.exists()

def test_the_same_recipe_resumes_without_training_again(run1):
    r = cli('train', 'tiny', '--quick', '--out', run1)
    assert r.returncode == 0 and 'clip:' not in r.stderr, r.stderr[-2000:]

def test_ship_model_writes_a_user_folder_and_refuses_a_broken_part(finished_run, tmp_path, monkeypatch):
    import shutil
    from sdfound.tiny import ship_model
    monkeypatch.chdir(tmp_path)
    sizes = ship_model(finished_run)  # the default: ./sdfound-models, not the installed package
    assert set(sizes) == {'tiny', 'tiny-clip', 'evaluator'} and (tmp_path / 'sdfound-models' / 'tiny' / 'unet').is_dir()
    before = snapshot(tmp_path / 'sdfound-models')
    broken = tmp_path / 'broken'
    shutil.copytree(finished_run, broken)
    (broken / 'evaluator' / 'model.safetensors').write_bytes(b'not weights')
    with pytest.raises(ValueError, match='evaluator does not load'): ship_model(broken)
    assert snapshot(tmp_path / 'sdfound-models') == before  # nothing shipped, nothing deleted

def test_a_checkpoint_without_its_state_says_how_to_recover(tmp_path):
    import shutil
    with pytest.raises(KeyboardInterrupt): _fit(tmp_path, fail_at=3)
    shutil.rmtree(tmp_path / 'state')
    with pytest.raises(ValueError, match='cannot resume from the checkpoint .* delete the folder'): _fit(tmp_path)

def test_a_stage_marked_done_without_its_weights_says_how_to_recover(run1):
    (run1 / 'vae' / 'diffusion_pytorch_model.safetensors').unlink()
    r = cli('train', 'tiny', '--quick', '--out', run1)
    assert r.returncode == 2 and 'is marked done but does not load' in r.stderr and 'delete that folder' in r.stderr

def test_an_empty_out_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = cli('train', 'tiny', '--quick', '--out', '')
    assert r.returncode == 2 and '--out must name a folder' in r.stderr and list(tmp_path.iterdir()) == []
