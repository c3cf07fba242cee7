import numpy as np, pytest, torch
from PIL import Image
from sdfound.core import get_device, default_model, seed_everything, pil_to_tensor, tensor_to_pil, image_grid

def test_get_device_picks_fp32_on_cpu_and_fp16_on_cuda():
    assert get_device('cpu') == (torch.device('cpu'), torch.float32)
    assert get_device('cuda')[1] == torch.float16
    assert get_device('cpu', torch.float16) == (torch.device('cpu'), torch.float16)

def test_get_device_honours_env(monkeypatch):
    monkeypatch.setenv('SDFOUND_DEVICE', 'cpu')
    assert get_device()[0].type == 'cpu'

def test_default_model_env_then_cli_then_lessons(monkeypatch):
    monkeypatch.delenv('SDFOUND_MODEL', raising=False)
    assert default_model(for_cli=True) == 'tiny'
    assert default_model() == ('sd15' if torch.cuda.is_available() else 'tiny')
    monkeypatch.setenv('SDFOUND_MODEL', 'sd14')
    assert default_model() == default_model(for_cli=True) == 'sd14'

def test_same_seed_gives_same_numbers():
    a = torch.randn(100, generator=seed_everything(3)); b = torch.randn(100, generator=seed_everything(3))
    c = torch.randn(100, generator=seed_everything(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    seed_everything(5); x = np.random.rand(); seed_everything(5); assert np.random.rand() == x

def test_seed_rejects_negative():
    with pytest.raises(ValueError, match='non-negative'): seed_everything(-1)

@pytest.mark.parametrize('value_range', [(-1, 1), (0, 1)])
def test_pil_tensor_round_trip_is_exact(value_range):
    arr = np.random.default_rng(0).integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)
    imgs = [Image.fromarray(a) for a in arr]
    x = pil_to_tensor(imgs, value_range)
    assert x.shape == (2, 3, 5, 7)
    assert x.min() >= value_range[0] and x.max() <= value_range[1]
    back = tensor_to_pil(x, value_range)
    assert all(np.array_equal(np.asarray(b), a) for b, a in zip(back, arr))

def test_pil_to_tensor_matches_diffusers_convention():
    from diffusers.image_processor import VaeImageProcessor
    img = Image.fromarray(np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8))
    ref = VaeImageProcessor(do_resize=False).preprocess(img)[0]
    torch.testing.assert_close(pil_to_tensor(img), ref, rtol=0, atol=1e-6)

def test_bad_value_range():
    with pytest.raises(ValueError, match='value_range'): pil_to_tensor(Image.new('RGB', (2, 2)), (0, 255))

def test_image_grid_places_images_row_major():
    cols = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (9, 9, 9), (200, 200, 0)]
    g = image_grid([Image.new('RGB', (4, 3), c) for c in cols], rows=2)
    assert g.size == (12, 6)
    assert g.getpixel((0, 0)) == cols[0] and g.getpixel((8, 0)) == cols[2] and g.getpixel((4, 3)) == cols[4]
    assert g.getpixel((8, 3)) == (0, 0, 0)  # the empty cell

def test_image_grid_errors():
    with pytest.raises(ValueError, match='at least one'): image_grid([])
    with pytest.raises(ValueError, match='cannot hold'): image_grid([Image.new('RGB', (2, 2))] * 5, rows=2, cols=2)

def test_fit_loss_falls_and_resume_matches_an_uninterrupted_run(tmp_path):
    from sdfound.train import fit
    xs = torch.linspace(-1, 1, 32)[:, None]
    loss_fn = lambda m, b: ((m(b['x']) - torch.sin(3 * b['x'])) ** 2).mean()
    batches = lambda step: dict(x=xs + 0.01 * torch.randn(xs.shape, generator=torch.Generator().manual_seed(step)))
    def net():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(1, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    a = net(); losses = fit(a, loss_fn, batches, steps=40, lr=0.02, warmup=5, ckpt_dir=tmp_path / 'a', ckpt_every=10, progress=False)
    assert losses[-1] < losses[0] / 2
    b = net()
    def failing(step):
        if step == 25: raise KeyboardInterrupt  # cut the run after the step-20 checkpoint
        return batches(step)
    with pytest.raises(KeyboardInterrupt): fit(b, loss_fn, failing, steps=40, lr=0.02, warmup=5, ckpt_dir=tmp_path / 'b', ckpt_every=10, progress=False)
    b = net(); resumed = fit(b, loss_fn, batches, steps=40, lr=0.02, warmup=5, ckpt_dir=tmp_path / 'b', ckpt_every=10, progress=False)
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
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(1, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    xs = torch.linspace(-1, 1, 32)[:, None]
    dtypes = []
    def loss_fn(m, b):
        y = m(b['x']); dtypes.append(y.dtype)
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
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(1, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    xs = torch.linspace(-1, 1, 32)[:, None]
    fit(net, lambda m, b: ((m(b['x']) - torch.sin(3 * b['x'])) ** 2).mean(), lambda s: dict(x=xs), steps=30, lr=0.05, warmup=5, ema=0.8, progress=False)
    expected = after[0]  # the average starts at the first step's weights, then each step pulls it 20% of the way
    for w in after[1:]: expected = [0.8 * e + 0.2 * x for e, x in zip(expected, w)]
    for p, e, last in zip(net.parameters(), expected, after[-1]):
        torch.testing.assert_close(p, e)
        assert not torch.allclose(p, last)  # not the last step's weights

def test_fit_with_ema_resumes_its_average(tmp_path):
    from sdfound.train import fit
    xs = torch.linspace(-1, 1, 32)[:, None]
    loss_fn = lambda m, b: ((m(b['x']) - torch.sin(3 * b['x'])) ** 2).mean()
    def net():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(1, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    kw = dict(steps=40, lr=0.05, warmup=5, ema=0.9, ckpt_every=10, progress=False)
    a = net(); fit(a, loss_fn, lambda s: dict(x=xs), ckpt_dir=tmp_path / 'a', **kw)
    def failing(step):
        if step == 25: raise KeyboardInterrupt
        return dict(x=xs)
    with pytest.raises(KeyboardInterrupt): fit(net(), loss_fn, failing, ckpt_dir=tmp_path / 'b', **kw)
    b = net(); fit(b, loss_fn, lambda s: dict(x=xs), ckpt_dir=tmp_path / 'b', **kw)
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
