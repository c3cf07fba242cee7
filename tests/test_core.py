import numpy as np, pytest, torch
from PIL import Image
from sdfound.core import get_device, default_model, seed_everything, pil_to_tensor, tensor_to_pil, image_grid

def test_get_device_picks_fp32_on_cpu_and_fp16_on_cuda(monkeypatch):
    assert get_device('cpu') == (torch.device('cpu'), torch.float32)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
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
    with pytest.raises(ValueError, match='seed must be an int ≥ 0'): seed_everything(-1)

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

