"""Every lesson notebook runs top to bottom, one test per notebook.

Cells flagged `cuda`, `hub` or `slow` are skipped unless named in `SDFOUND_NB_FLAGS` (e.g. `SDFOUND_NB_FLAGS=cuda`)."""
import os
from pathlib import Path
import pytest
import nbdev.test as nbdev_test

NBS = Path(__file__).parents[1] / 'nbs'
ALL_FLAGS = ['cuda', 'hub', 'slow']

@pytest.mark.parametrize('nb', sorted(p.name for p in NBS.glob('[0-9]*.ipynb')))
def test_notebook_runs(nb):
    force = os.environ.get('SDFOUND_NB_FLAGS', '').split()
    ok, secs = nbdev_test.test_nb(NBS / nb, skip_flags=ALL_FLAGS, force_flags=force, basepath=NBS.parent)
    assert ok, f"{nb} failed (traceback above)"

# the lessons that load a pipeline: on a GPU with internet they run real SD 1.5, so each also runs here on the
# sd15-mini stand-in (SD 1.5's shapes, random weights), which takes their SD 1.5 branches
PIPELINE_LESSONS = ['02_pipelines.ipynb', '03_pipelines_concepts.ipynb', '07_schedulers.ipynb', '08_sampling.ipynb', '90_cli.ipynb']

@pytest.mark.parametrize('nb', PIPELINE_LESSONS, ids=lambda nb: f'sd15-mini:{nb}')
def test_notebook_runs_on_the_sd15_stand_in(nb, monkeypatch):
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
    ok, secs = nbdev_test.test_nb(NBS / nb, skip_flags=ALL_FLAGS, basepath=NBS.parent)
    assert ok, f"{nb} failed on sd15-mini (traceback above)"
    assert 512 in loaded, f"{nb} loaded no SD 1.5-shaped pipeline"
    # 03 trains its concepts on the tiny model whatever the lesson's model; its SD 1.5 cells need the hub (`#| hub`)
    if nb != '03_pipelines_concepts.ipynb': assert 512 in decoded, f"{nb} made no 512-pixel picture: its SD 1.5 branches did not run"

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
