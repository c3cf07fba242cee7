import contextlib, io, os, tempfile
from pathlib import Path
from types import SimpleNamespace
from unittest import mock
os.environ.setdefault('MPLBACKEND', 'Agg')
# stand-ins (sd15-mini) are built once into a cache of the tests' own, not the learner's ~/.cache
os.environ.setdefault('SDFOUND_CACHE', os.path.join(tempfile.gettempdir(), 'sdfound-test-cache'))
# one thread per test process, and per process a test starts: pytest-xdist runs one test process per core (-n auto),
# and threads beyond the cores only wait for each other (two 2-thread processes on 2 cores ran ten times slower)
os.environ.setdefault('OMP_NUM_THREADS', '1')
import torch
torch.set_num_threads(int(os.environ['OMP_NUM_THREADS']))

NOTEBOOK_BUDGET_S = 120
_notebook_times = {}

def pytest_sessionstart(session):
    "Build sd15-mini once, before any worker starts: workers that found it missing would each build it in one folder."
    if hasattr(session.config, 'workerinput'): return  # an xdist worker: the controller built it
    from sdfound.sd15 import standin_folder
    standin_folder('sd15-mini')

def pytest_collection_modifyitems(config, items):
    "The lessons first, the slowest first: a worker that starts a long notebook last would make every other one wait."
    items.sort(key=lambda item: -_expected_seconds(item))

def _expected_seconds(item) -> float:
    if 'test_notebook_runs' not in item.nodeid: return 0
    from test_notebooks import EXPECTED_SECONDS
    return EXPECTED_SECONDS.get(item.nodeid.split('[')[-1].rstrip(']'), 30)

def pytest_runtest_logreport(report):
    if report.when == 'call' and 'test_notebook_runs' in report.nodeid:
        _notebook_times[report.nodeid.split('[')[-1].rstrip(']')] = (report.duration, report.outcome)

def pytest_terminal_summary(terminalreporter):
    if not _notebook_times: return
    terminalreporter.section(f'notebooks, slowest first (budget: {NOTEBOOK_BUDGET_S} s each)')
    for nb, (secs, outcome) in sorted(_notebook_times.items(), key=lambda kv: -kv[1][0]):
        over = '  over budget' if secs > NOTEBOOK_BUDGET_S else ''
        terminalreporter.write_line(f'{secs:7.1f} s  {outcome:7s} {nb}{over}')

def random_small_pipeline(scheduler):
    "A complete, randomly initialised small SD pipeline (64×64 pictures, 8×8×4 latents, a tokenizer trained on our captions)."
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel
    from sdfound import clip as sclip
    from sdfound.data import DigitScenes, caption
    from sdfound.sd15 import assemble_pipeline
    from sdfound.tiny import tiny_unet
    from sdfound.vae import tiny_vae
    ds = DigitScenes(200, seed=0)
    tok = sclip.train_tokenizer([caption(ds.scene(i)) for i in range(len(ds))], vocab_size=200)
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=tok.model_max_length, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id)).eval()
    return assemble_pipeline(tiny_unet((16, 32, 32), cross_attention_dim=32), tiny_vae((8, 8, 16, 16)), text_encoder, tok,
                             scheduler)

def run_cli(*args, env: dict | None = None):
    """`sdfound ARGS` run in this process through `sdfound.cli.main`, as the command runs it: its exit code, stdout and
    stderr (as `subprocess.run` returns them), without a new interpreter's start-up. `env` is added to the environment
    for the call. An exception that escapes `main` is a crash and fails the test, as a traceback would."""
    from sdfound.cli import main
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ, env or {}), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try: code = main([str(a) for a in args])
        except SystemExit as e: code = e.code
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())

def made_once(tmp_path_factory, name: str, make) -> Path:
    """Folder `name`, filled by `make(folder)` once per test run: the first test process (pytest-xdist) to get here
    makes it while the others wait, then all share it."""
    from filelock import FileLock
    base = tmp_path_factory.getbasetemp()  # under xdist, each worker's own folder inside this run's
    folder = (base.parent if os.environ.get('PYTEST_XDIST_WORKER') else base) / name
    with FileLock(str(folder) + '.lock'):
        if not (folder / 'done').exists():
            folder.mkdir(exist_ok=True)
            make(folder)
            (folder / 'done').write_text('')
    return folder

def sine_net(width: int = 16):
    "The small seeded model `fit`'s tests train: 1 → `width` → 1, tanh, fitting sin(3x)."
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(1, width), torch.nn.Tanh(), torch.nn.Linear(width, 1))

def sine_loss(model, batch) -> torch.Tensor:
    "How far `model` is from sin(3x) on the batch's `x`."
    return ((model(batch['x']) - torch.sin(3 * batch['x'])) ** 2).mean()

def cut_at(get_batch, step: int):
    "`get_batch`, but a run cut short (a `KeyboardInterrupt`) when it asks for `step`."
    def get(s):
        if s == step: raise KeyboardInterrupt
        return get_batch(s)
    return get
