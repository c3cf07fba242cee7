"""Every lesson notebook runs top to bottom, one test per notebook.

Cells flagged `cuda`, `hub` or `slow` are skipped unless named in `SDFOUND_NB_FLAGS` (e.g. `SDFOUND_NB_FLAGS=cuda`)."""
import os
from pathlib import Path
import pytest
import nbdev.test as nbdev_test

NBS = Path(__file__).parents[1] / 'nbs'
ALL_FLAGS = ['cuda', 'hub', 'slow']
# seconds each run takes on one core, roughly: the test processes start the long ones first (conftest.py)
EXPECTED_SECONDS = {'03b_personalize.ipynb': 75, '03a_concepts.ipynb': 25, '02_pipelines.ipynb': 40, '05_vae.ipynb': 40,
                    '04b_ddpm.ipynb': 30, '06_clip.ipynb': 50, '90_cli.ipynb': 25, '09_evaluator.ipynb': 20,
                    '10_tiny.ipynb': 80, '04a_magic.ipynb': 15, '08_sampling.ipynb': 45, '08b_distill.ipynb': 80, '00_core.ipynb': 6,
                    '07_schedulers.ipynb': 5, '01_data.ipynb': 2, '11_sd15.ipynb': 1, '91_train.ipynb': 3,
                    'sd15-mini:02_pipelines.ipynb': 40, 'sd15-mini:90_cli.ipynb': 25, 'sd15-mini:08_sampling.ipynb': 55,
                    'sd15-mini:07_schedulers.ipynb': 5, 'sd15-mini:03b_personalize.ipynb': 1}

@pytest.mark.parametrize('nb', sorted(p.name for p in NBS.glob('[0-9]*.ipynb')))
def test_notebook_runs(nb):
    force = os.environ.get('SDFOUND_NB_FLAGS', '').split()
    ok, secs = nbdev_test.test_nb(NBS / nb, skip_flags=ALL_FLAGS, force_flags=force, basepath=NBS.parent)
    assert ok, f"{nb} failed (traceback above)"

# the lessons that load a pipeline: on a GPU with internet they run real SD 1.5, so each also runs here on the
# sd15-mini stand-in (SD 1.5's shapes, random weights), which takes their SD 1.5 branches
PIPELINE_LESSONS = ['02_pipelines.ipynb', '03b_personalize.ipynb', '07_schedulers.ipynb', '08_sampling.ipynb', '90_cli.ipynb']
# 03b trains and measures its concepts on the tiny model whatever the lesson's model: after the cell that says so
# (it sets `tiny_model`), its cells do on sd15-mini exactly what they do in the tiny run, so the stand-in run stops
# there; `test_after_the_stop_no_cell_reads_the_lessons_model` proves that nothing after it reads `pipe`
STANDIN_STOPS = {'03b_personalize.ipynb': 'tiny_model = '}

def split_at(nb_path: Path, marker: str) -> tuple[dict, list[dict]]:
    "Notebook `nb_path` cut after the first cell holding `marker`, and the cells that come after it."
    import json
    nb = json.loads(nb_path.read_text())
    stop = next(i for i, c in enumerate(nb['cells']) if marker in ''.join(c['source']))
    return {**nb, 'cells': nb['cells'][:stop + 1]}, nb['cells'][stop + 1:]

def cells_until(nb_path: Path, marker: str, dest: Path) -> Path:
    "A copy of notebook `nb_path` that ends with the first cell holding `marker`, written to `dest`."
    import json
    dest.write_text(json.dumps(split_at(nb_path, marker)[0]))
    return dest

def reads_global(source: str, name: str) -> bool:
    "Does this cell read the notebook's variable `name`, at its top level or in a function (not as a parameter)?"
    import symtable
    code = '\n'.join(line for line in source.splitlines() if not line.lstrip().startswith(('%', '!', '#|')))
    def walk(table, top):
        sym = next((s for s in table.get_symbols() if s.get_name() == name), None)
        if sym is not None and sym.is_referenced() and (top or sym.is_global()): return True
        return any(walk(child, False) for child in table.get_children())
    return walk(symtable.symtable(code, 'cell', 'exec'), True)

def flagged(source: str) -> bool:
    return any(line.strip() in {f'#| {f}' for f in ALL_FLAGS} for line in source.splitlines())

@pytest.mark.parametrize('nb', PIPELINE_LESSONS, ids=lambda nb: f'sd15-mini:{nb}')
def test_notebook_runs_on_the_sd15_stand_in(nb, monkeypatch, tmp_path):
    from diffusers import DiffusionPipeline
    loaded, decoded = [], []  # the picture width of every pipeline loaded, and of every picture their VAEs decode
    load = DiffusionPipeline.from_pretrained.__func__
    def load_and_watch(cls, *args, **kw):
        pipe = load(cls, *args, **kw)
        if getattr(pipe, 'vae', None) is not None:
            loaded.append(pipe.unet.config.sample_size * pipe.vae_scale_factor)
            pipe.vae.decoder.register_forward_hook(lambda m, i, out: decoded.append(out.shape[-1]))
        return pipe
    monkeypatch.setattr(DiffusionPipeline, 'from_pretrained', classmethod(load_and_watch))
    monkeypatch.setenv('SDFOUND_MODEL', 'sd15-mini')
    path = cells_until(NBS / nb, STANDIN_STOPS[nb], tmp_path / nb) if nb in STANDIN_STOPS else NBS / nb
    ok, secs = nbdev_test.test_nb(path, skip_flags=ALL_FLAGS, basepath=NBS.parent)
    assert ok, f"{nb} failed on sd15-mini (traceback above)"
    assert 512 in loaded, f"{nb} loaded no SD 1.5-shaped pipeline"
    # 03's SD 1.5 pictures are in its `#| hub` cells (sd-concepts-library, sd-dreambooth-library)
    if nb not in STANDIN_STOPS:
        assert 512 in decoded, f"{nb} made no 512-pixel picture: its SD 1.5 branches did not run"

@pytest.mark.parametrize('nb', list(STANDIN_STOPS))
def test_after_the_stop_no_cell_reads_the_lessons_model(nb):
    "What a lesson's stand-in run leaves out runs the same on any model: no unflagged cell after it reads `pipe`."
    after = split_at(NBS / nb, STANDIN_STOPS[nb])[1]
    later = [(c['id'], ''.join(c['source'])) for c in after if c['cell_type'] == 'code']
    readers = [cid for cid, src in later if not flagged(src) and reads_global(src, 'pipe')]
    assert readers == [], f"cells after the stand-in stop of {nb} read the lesson's model `pipe`: {readers}"
    # and the flagged cells, which do read it, are the lesson's SD 1.5 branches: they need the hub
    assert any(flagged(src) and reads_global(src, 'pipe') for _, src in later)

def test_the_model_reader_check_tells_reads_from_parameters():
    assert reads_global("images = pipe('a 7').images", 'pipe')
    assert reads_global("def f(x):\n    return pipe(x)", 'pipe')
    assert reads_global("#| hide\n!echo hi\nshow(pipe)", 'pipe')
    assert not reads_global("def f(pipe, x):\n    return pipe(x)", 'pipe')
    assert not reads_global("student = load_pipeline('tiny')\nstudent('a 7')", 'pipe')
    assert not reads_global("pipe = load_pipeline('tiny')", 'pipe')  # written, not read: a new model, not the lesson's

def test_there_are_notebooks():
    assert len(list(NBS.glob('[0-9]*.ipynb'))) >= 2

def _notebook(path, flag):
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('x = 1'), nbformat.v4.new_code_cell(f'#| {flag}\nraise RuntimeError("flagged cell ran")')]
    nbformat.write(nb, path)
    return path

@pytest.mark.parametrize('flag', ALL_FLAGS)
def test_flagged_cells_are_skipped_by_default_and_run_when_forced(tmp_path, flag):
    nb = _notebook(tmp_path / f'{flag}.ipynb', flag)
    assert nbdev_test.test_nb(nb, skip_flags=ALL_FLAGS, profile=False)[0]
    assert not nbdev_test.test_nb(nb, skip_flags=ALL_FLAGS, force_flags=[flag], profile=False, showerr=False)[0]

def test_project_declares_the_three_flags():
    from nbdev.config import get_config
    assert sorted(get_config(NBS.parent).tst_flags.split()) == sorted(ALL_FLAGS)

# what a student must not see in a committed lesson's outputs: progress bars and libraries' warnings
NOISE = {'a progress bar': r'\d+%\|[█▏▎▍▌▋▊▉ ]*\||it/s\]|s/it\]', 'a warning': r'\b\w*Warning\b|warnings\.warn|FutureWarning',
         'a torchvision notice': r'torchvision', 'a loading message': r'Loading pipeline components|Fetching \d+ files'}

def output_texts(path):
    "Each code cell's saved outputs as text: streams, plain-text results and error tracebacks."
    import json
    for cell in json.loads(Path(path).read_text())['cells']:
        for out in cell.get('outputs', []):
            text = out.get('text') or out.get('data', {}).get('text/plain') or out.get('traceback') or ''
            yield cell.get('id'), ''.join(text) if isinstance(text, list) else text

@pytest.mark.parametrize('nb', sorted(p.name for p in NBS.glob('[0-9]*.ipynb')))
def test_saved_outputs_carry_no_tool_noise(nb):
    import re
    found = [f"cell {cid}: {what} ({m.group(0)!r})" for cid, text in output_texts(NBS / nb)
             for what, pat in NOISE.items() if (m := re.search(pat, text))]
    assert not found, '\n'.join(found)

def test_the_noise_check_catches_bars_and_warnings(tmp_path):
    import nbformat, re
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('x', outputs=[nbformat.v4.new_output('stream', name='stderr', text='vae:  40%|████      | 4/10 [00:01<00:02, 3.1it/s]')]),
                nbformat.v4.new_code_cell('y', outputs=[nbformat.v4.new_output('stream', name='stderr', text='/x.py:3: FutureWarning: deprecated')]),
                nbformat.v4.new_code_cell('z', outputs=[nbformat.v4.new_output('stream', name='stdout', text='accuracy 99.5% on 1,000 pictures')])]
    nbformat.write(nb, tmp_path / 'n.ipynb')
    hits = [(cid, what) for cid, text in output_texts(tmp_path / 'n.ipynb') for what, pat in NOISE.items() if re.search(pat, text)]
    assert [w for _, w in hits] == ['a progress bar', 'a warning']
