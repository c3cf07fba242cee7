"""Every benchmark script still imports: `bench/` is not run in CI (each takes minutes to hours), but a name it
imports from sdfound that moved or vanished fails here, in a second."""
import importlib.util, sys
from pathlib import Path
import pytest

BENCH = Path(__file__).parents[1] / 'bench'

@pytest.mark.parametrize('script', sorted(p.name for p in BENCH.glob('*.py')))
def test_bench_script_imports(script, monkeypatch):
    monkeypatch.setattr(sys, 'argv', [script])  # as if run with no arguments; the `__main__` block does not run
    spec = importlib.util.spec_from_file_location(f'bench_{Path(script).stem}', BENCH / script)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
