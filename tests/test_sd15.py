"""SD 1.5's path without a hub: its real tokenizer offline, its architecture, and the sd15-mini stand-in."""
import gzip, json, os, subprocess
import pytest, regex, torch
from PIL import Image
from sdfound.clip import sd_tokenizer, tokenize
from sdfound.core import models_dir
from sdfound.sd15 import STANDINS, count_parameters, has_random_weights, sd15_architecture, standin_folder

pytestmark = pytest.mark.filterwarnings('ignore::DeprecationWarning')

@pytest.fixture(scope='module')
def tok(): return sd_tokenizer()

def test_sd_tokenizer_gives_the_ids_published_with_sd15(tok):
    ids = tokenize(tok, ['A picture of a puppy'])[0].tolist()
    assert len(tok) == 49408 and tok.model_max_length == 77
    assert ids[:7] == [49406, 320, 1674, 539, 320, 6829, 49407] and ids[7:] == [49407] * 70
    assert tok('A picture of a puppy.').input_ids == [49406, 320, 1674, 539, 320, 6829, 269, 49407]

def bpe_by_hand(text):
    "OpenAI CLIP's tokenizer, restated from its vocabulary file for ASCII text: ids from merge ranks alone."
    lines = gzip.open(models_dir() / 'sd-tokenizer' / 'bpe_simple_vocab_16e6.txt.gz', 'rt', encoding='utf-8').read().split('\n')
    ranks = {tuple(l.split()): r for r, l in enumerate(lines[1:48895])}
    # ids: the printable ASCII byte characters come first in byte order ('!' is 0), the same with </w> 256 later,
    # and merge r makes token 512 + r
    char_id = lambda p: ord(p[0]) - ord('!') + (256 if p.endswith('</w>') else 0)
    ids = [49406]
    for word in regex.findall(r"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+", text.lower()):
        parts = list(word[:-1]) + [word[-1] + '</w>']
        while len(parts) > 1:
            pairs = [(ranks.get(p, 1e9), i) for i, p in enumerate(zip(parts, parts[1:]))]
            rank, i = min(pairs)
            if rank == 1e9: break
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
        merged = {a + b: r for (a, b), r in ranks.items()}
        ids += [char_id(p) if len(p.replace('</w>', '')) == 1 else 512 + merged[p] for p in parts]
    return ids + [49407]

@pytest.mark.parametrize('prompt', ['a photograph of an astronaut riding a horse', 'A watercolour painting of a red house, blue sky!',
                                    "Trending on ArtStation, 4k, highly-detailed portrait of a cat's face", 'sdfound 2026'])
def test_sd_tokenizer_matches_bpe_applied_by_hand(tok, prompt):
    assert tok(prompt).input_ids == bpe_by_hand(prompt)

def test_sd15_architecture_has_sd15s_parameter_counts():
    # the counts of the published SD 1.5 weights
    assert count_parameters(sd15_architecture()) == dict(unet=859_520_964, vae=83_653_863, text_encoder=123_060_480)

@pytest.fixture(scope='module')
def mini():
    from sdfound.pipelines import load_pipeline
    pipe = load_pipeline('sd15-mini', device='cpu'); pipe.set_progress_bar_config(disable=True)
    return pipe

def test_sd15_mini_has_sd15s_outer_shapes(mini):
    from sdfound.pipelines import image_size, is_tiny
    from sdfound.schedulers import sd_scheduler
    assert not is_tiny(mini) and image_size(mini) == 512 and has_random_weights('sd15-mini')
    ids = tokenize(mini.tokenizer, ['a photograph of an astronaut riding a horse'])
    with torch.no_grad():
        assert mini.text_encoder(ids)[0].shape == (1, 77, 768)
        assert mini.vae.encode(torch.zeros(1, 3, 512, 512)).latent_dist.mean.shape == (1, 4, 64, 64)
    assert mini.unet.config.cross_attention_dim == 768 and mini.vae.config.scaling_factor == 0.18215
    public = lambda cfg: {k: v for k, v in cfg.items() if not k.startswith('_')}  # not diffusers' own bookkeeping
    assert public(mini.scheduler.config) == public(sd_scheduler('pndm').config) and type(mini.scheduler).__name__ == 'PNDMScheduler'
    assert mini.safety_checker is None
    x = mini('a horse', num_inference_steps=2, output_type='pt', generator=torch.Generator().manual_seed(0)).images
    assert x.shape == (1, 3, 512, 512)

def test_standin_is_rebuilt_when_another_version_built_it(tmp_path, monkeypatch):
    monkeypatch.setenv('SDFOUND_CACHE', str(tmp_path))
    folder = standin_folder('sd15-mini')
    marker = json.loads((folder / 'sdfound.json').read_text())
    assert marker['random_weights'] and (folder / 'model_index.json').exists()
    weights = (folder / 'unet' / 'diffusion_pytorch_model.safetensors').read_bytes()
    (folder / 'sdfound.json').write_text(json.dumps({**marker, 'sdfound_version': '0.0.0'}))
    assert standin_folder('sd15-mini') == folder
    assert json.loads((folder / 'sdfound.json').read_text()) == marker
    assert (folder / 'unet' / 'diffusion_pytorch_model.safetensors').read_bytes() == weights  # seeded: the same weights
    assert [p.name for p in tmp_path.iterdir()] == ['sd15-mini']  # no half-built folders left behind
    with pytest.raises(ValueError, match='unknown stand-in'): standin_folder('sd15-huge')

def test_random_weights_marker_reads_folders(tmp_path):
    assert not has_random_weights('tiny') and not has_random_weights(models_dir() / 'tiny') and not has_random_weights(tmp_path)
    assert has_random_weights(standin_folder('sd15-mini')) and set(STANDINS) == {'sd15-mini', 'sd15-random'}

def test_cli_draws_a_512_pixel_picture_on_sd15_mini_offline(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1')
    r = subprocess.run(['sdfound', 'generate', 'a photograph of an astronaut riding a horse', '--model', 'sd15-mini', '--steps', '3',
                        '-o', tmp_path / 'x.png'], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / 'x.png').size == (512, 512)

def test_sd15_in_fp16_downloads_only_the_fp16_weights(monkeypatch):
    from diffusers import StableDiffusionPipeline
    from sdfound import pipelines
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)  # float16 is for a GPU: on the CPU it loads float32
    seen = {}
    def fake(where, **kw):
        seen.update(kw, where=where); raise OSError('offline')
    monkeypatch.setattr(StableDiffusionPipeline, 'from_pretrained', fake)
    with pytest.raises(pipelines.ModelNotFound, match='sd15-mini'): pipelines.load_pipeline('sd15', device='cuda', dtype=torch.float16)
    assert seen['where'] == pipelines.MODEL_IDS['sd15'] and seen['variant'] == 'fp16' and seen['dtype'] == torch.float16
    seen.clear()
    with pytest.raises(pipelines.ModelNotFound): pipelines.load_pipeline('sd15', device='cpu', dtype=torch.float32)
    assert 'variant' not in seen
