import subprocess, sys
from pathlib import Path
import numpy as np, pytest
from PIL import Image
from sdfound.cli import main, scenes_grid

def run_cli(*args):
    return subprocess.run(['sdfound', *args], capture_output=True, text=True)

def test_scenes_writes_a_grid_png(tmp_path):
    out = tmp_path / 'grid.png'
    r = run_cli('scenes', '-n', '9', '--seed', '3', '-o', str(out))
    assert r.returncode == 0, r.stderr
    img = Image.open(out)
    assert img.size == (3 * 128, 3 * 128)
    assert np.array_equal(np.asarray(img), np.asarray(scenes_grid(9, 3)))

def test_scenes_same_seed_same_bytes(tmp_path):
    a, b = tmp_path / 'a.png', tmp_path / 'b.png'
    main(['scenes', '-n', '4', '-o', str(a)]); main(['scenes', '-n', '4', '-o', str(b)])
    assert a.read_bytes() == b.read_bytes()

@pytest.mark.parametrize('args,msg', [
    (['-o', '{tmp}/missing/x.png'], 'does not exist'),
    (['-n', '0', '-o', '{tmp}/x.png'], '-n must be'),
    (['--seed', '-2', '-o', '{tmp}/x.png'], '--seed must be'),
    (['-o', '{tmp}/x.jpg'], 'must be a .png'),
])
def test_scenes_bad_input_is_one_clear_error(tmp_path, args, msg):
    r = run_cli('scenes', *[a.format(tmp=tmp_path) for a in args])
    assert r.returncode == 2
    assert msg in r.stderr and 'Traceback' not in r.stderr
    assert not list(tmp_path.rglob('*.png'))
