"""`sdfound.train`: the loop every model trains with. Its loss falls, a resumed run equals an uninterrupted one, the
learning rate has its shape, bf16 autocast keeps float32 weights, the moving average (and its checkpoint) is right."""
import pytest, torch
from conftest import cut_at, sine_loss, sine_net

def test_fit_loss_falls_and_resume_matches_an_uninterrupted_run(tmp_path):
    from sdfound.train import fit
    xs = torch.linspace(-1, 1, 32)[:, None]
    batches = lambda step: dict(x=xs + 0.01 * torch.randn(xs.shape, generator=torch.Generator().manual_seed(step)))
    kw = dict(steps=40, lr=0.02, warmup=5, ckpt_every=10, progress=False)
    a = sine_net()
    losses = fit(a, sine_loss, batches, ckpt_dir=tmp_path / 'a', **kw)
    assert losses[-1] < losses[0] / 2
    # cut the run after the step-20 checkpoint, then run it again
    with pytest.raises(KeyboardInterrupt): fit(sine_net(), sine_loss, cut_at(batches, 25), ckpt_dir=tmp_path / 'b', **kw)
    b = sine_net()
    resumed = fit(b, sine_loss, batches, ckpt_dir=tmp_path / 'b', **kw)
    assert len(resumed) == 40 and next(b.parameters()).device.type == "cpu"  # fit hands the model back where it found it
    for pa, pb in zip(a.parameters(), b.parameters()): torch.testing.assert_close(pa, pb)

def test_fit_rejects_zero_steps():
    from sdfound.train import fit
    with pytest.raises(ValueError, match='steps must be'): fit(torch.nn.Linear(1, 1), None, None, steps=0)

def test_lr_shape_warms_up_decays_and_restarts():
    from sdfound.train import lr_shape
    f = lr_shape(1000, warmup=100)
    assert f(0) == pytest.approx(0.01) and f(49) == pytest.approx(0.5, abs=0.01) and f(99) > 0.97  # linear warm-up
    assert f(500) == pytest.approx(0.55) and f(1000) == pytest.approx(0.1)       # cosine down to 10%
    assert all(f(s) >= f(s + 1) for s in range(100, 1000))
    g = lr_shape(1000, warmup=100, restart_at=400)
    assert g(399) == pytest.approx(0.1, abs=1e-3)           # the first cycle ends low...
    assert g(400) == pytest.approx(f(400))                  # ...then jumps back up to the long cosine
    assert [g(s) for s in range(400, 1001)] == [f(s) for s in range(400, 1001)]
    assert [lr_shape(1000, restart_at=1000)(s) for s in range(1001)] == [f(s) for s in range(1001)]  # no restart left

def test_fit_steps_with_the_lr_shape(monkeypatch):
    from sdfound.train import fit, lr_shape
    seen, step = [], torch.optim.AdamW.step
    def recording_step(self, *a, **k):
        seen.append(self.param_groups[0]['lr'])
        return step(self, *a, **k)
    monkeypatch.setattr(torch.optim.AdamW, 'step', recording_step)
    fit(torch.nn.Linear(1, 1), lambda m, b: m(b['x']).pow(2).mean(), lambda s: dict(x=torch.ones(4, 1)), steps=30, lr=0.5, warmup=5,
        restart_at=12, progress=False)
    assert seen == pytest.approx([0.5 * lr_shape(30, 5, 12)(s) for s in range(30)])

def test_fit_in_bf16_mixed_precision_keeps_float32_weights():
    from sdfound.train import fit
    net = sine_net()
    xs = torch.linspace(-1, 1, 32)[:, None]
    dtypes = []
    def loss_fn(m, b):
        y = m(b['x'])
        dtypes.append(y.dtype)
        return ((y.float() - torch.sin(3 * b['x'])) ** 2).mean()
    losses = fit(net, loss_fn, lambda s: dict(x=xs), steps=60, lr=0.02, warmup=5, bf16=True, progress=False)
    assert set(dtypes) == {torch.bfloat16}                     # the forward pass ran in bf16...
    assert all(p.dtype == torch.float32 for p in net.parameters())  # ...on float32 master weights
    assert losses[-1] < losses[0] / 2

def test_fit_with_ema_ends_on_the_moving_average_of_the_weights(monkeypatch):
    from sdfound.train import fit
    after, step = [], torch.optim.AdamW.step
    def recording_step(self, *a, **k):
        out = step(self, *a, **k)
        after.append([p.detach().clone() for p in self.param_groups[0]['params']])
        return out
    monkeypatch.setattr(torch.optim.AdamW, 'step', recording_step)
    net = sine_net()
    xs = torch.linspace(-1, 1, 32)[:, None]
    fit(net, sine_loss, lambda s: dict(x=xs), steps=30, lr=0.05, warmup=5, ema=0.8, progress=False)
    expected = after[0]  # the average starts at the first step's weights, then each step pulls it 20% of the way
    for w in after[1:]: expected = [0.8 * e + 0.2 * x for e, x in zip(expected, w)]
    for p, e, last in zip(net.parameters(), expected, after[-1]):
        torch.testing.assert_close(p, e)
        assert not torch.allclose(p, last)  # not the last step's weights

def test_fit_with_ema_resumes_its_average(tmp_path):
    from sdfound.train import fit
    xs = torch.linspace(-1, 1, 32)[:, None]
    batches = lambda s: dict(x=xs)
    kw = dict(steps=40, lr=0.05, warmup=5, ema=0.9, ckpt_every=10, progress=False)
    a = sine_net()
    fit(a, sine_loss, batches, ckpt_dir=tmp_path / 'a', **kw)
    with pytest.raises(KeyboardInterrupt): fit(sine_net(), sine_loss, cut_at(batches, 25), ckpt_dir=tmp_path / 'b', **kw)
    b = sine_net()
    fit(b, sine_loss, batches, ckpt_dir=tmp_path / 'b', **kw)
    for pa, pb in zip(a.parameters(), b.parameters()): torch.testing.assert_close(pa, pb)

@pytest.mark.parametrize('ema', [0, 1, 1.5, -0.1])
def test_fit_rejects_an_ema_outside_0_1(ema):
    from sdfound.train import fit
    with pytest.raises(ValueError, match='ema must be'): fit(torch.nn.Linear(1, 1), None, None, steps=5, ema=ema)

@pytest.mark.parametrize('cpuinfo,expected', [('flags : fpu avx512f avx512_bf16 sse', True), ('flags : fpu amx_bf16', True),
                                              ('flags : fpu avx2 avx512f', False), (None, False)])
def test_native_bf16_reads_the_cpu_flags(monkeypatch, cpuinfo, expected):
    import pathlib
    from sdfound.train import native_bf16
    def read_text(self, *a, **k):
        if cpuinfo is None: raise OSError('no /proc here')
        return cpuinfo
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(pathlib.Path, 'read_text', read_text)
    assert native_bf16() is expected

def test_before_step_runs_before_each_step_and_sees_the_weights_so_far():
    from sdfound.train import fit
    torch.manual_seed(0)
    line, seen, after = torch.nn.Linear(1, 1), [], []
    xs = torch.linspace(-1, 1, 8)[:, None]
    def loss_fn(m, b):
        after.append(m.weight.item())  # the weight this step starts from
        return ((m(b['x']) - 3 * b['x']) ** 2).mean()
    fit(line, loss_fn, lambda s: dict(x=xs), steps=5, lr=0.1, warmup=1, progress=False,
        before_step=lambda step, m: seen.append((step, m.weight.item())))
    assert [s for s, _ in seen] == list(range(5)) and [w for _, w in seen] == after

def test_a_checkpoint_saves_the_moving_average_as_safetensors_not_a_pickle(tmp_path):
    from safetensors.torch import load_file
    from sdfound.train import fit
    net = torch.nn.Linear(2, 1)
    fit(net, lambda m, b: m(b['x']).pow(2).mean(), lambda s: dict(x=torch.ones(4, 2)), steps=4, lr=0.1, warmup=1,
        ema=0.5, ckpt_dir=tmp_path, ckpt_every=2, progress=False)
    ema = load_file(tmp_path / 'ema.safetensors')
    torch.testing.assert_close(ema['module.weight'], net.weight.detach())  # the model ends on the average it saved
    assert not [p.name for p in (tmp_path / 'state').iterdir() if p.name.startswith('custom_checkpoint')]
