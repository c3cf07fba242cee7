import os
os.environ.setdefault('MPLBACKEND', 'Agg')

_notebook_times = {}

def pytest_runtest_logreport(report):
    if report.when == 'call' and 'test_notebook_runs' in report.nodeid:
        _notebook_times[report.nodeid.split('[')[-1].rstrip(']')] = (report.duration, report.outcome)

def pytest_terminal_summary(terminalreporter):
    if not _notebook_times: return
    terminalreporter.section('notebooks, slowest first (budget: 180 s each)')
    for nb, (secs, outcome) in sorted(_notebook_times.items(), key=lambda kv: -kv[1][0]):
        terminalreporter.write_line(f'{secs:7.1f} s  {outcome:7s} {nb}')
