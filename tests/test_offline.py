"""sdfound needs no network: with every socket blocked it imports, draws with the tiny model, and runs the command
line; asked for a hub model, it fails at once (no retries) and names the models that work offline."""
import os, subprocess, sys, textwrap
import pytest

BLOCKED = textwrap.dedent('''
    import socket, sys
    attempts = []
    def refuse(*args, **kwargs):
        attempts.append(args[:1])
        raise OSError("network blocked by the test")
    socket.socket.connect = socket.socket.connect_ex = refuse
    socket.create_connection = socket.getaddrinfo = refuse
''')

def run_blocked(code, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.endswith('_OFFLINE')}  # not told it is offline: it has to cope
    return subprocess.run([sys.executable, '-c', BLOCKED + textwrap.dedent(code)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)

def test_tiny_pipeline_and_cli_run_with_sockets_blocked(tmp_path):
    r = run_blocked('''
        import torch
        from sdfound.pipelines import load_pipeline
        pipe = load_pipeline('tiny', device='cpu')
        image = pipe('a red 7 on a blue background', num_inference_steps=3, generator=torch.Generator().manual_seed(0)).images[0]
        assert image.size == (64, 64)
        from sdfound.cli import main
        main(['generate', 'a red 7 on a blue background', '--steps', '3', '-o', 'x.png'])
        print('connection attempts:', len(attempts))
    ''', tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'connection attempts: 0' in r.stdout and (tmp_path / 'x.png').exists()

def test_hub_model_fails_at_once_and_names_offline_models(tmp_path):
    r = run_blocked('''
        from sdfound.pipelines import load_pipeline, ModelNotFound
        for _ in range(2):
            try: load_pipeline('sd15', device='cpu')
            except ModelNotFound as e: print('message:', e)
            print('connection attempts:', len(attempts))
    ''', tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'tiny' in r.stdout and 'sd15-mini' in r.stdout
    first, second = [int(line.split(':')[1]) for line in r.stdout.splitlines() if line.startswith('connection attempts')]
    # the first load also lets huggingface_hub look up its agent registry once per process; after that, each load is
    # exactly one look for the hub, then the local cache only: no retries
    assert first <= 2 and second - first == 1, r.stdout
