import os, tempfile
os.environ.setdefault('MPLBACKEND', 'Agg')
# stand-ins (sd15-mini) are built once into a cache of the tests' own, not the learner's ~/.cache
os.environ.setdefault('SDFOUND_CACHE', os.path.join(tempfile.gettempdir(), 'sdfound-test-cache'))

_notebook_times = {}

def pytest_runtest_logreport(report):
    if report.when == 'call' and 'test_notebook_runs' in report.nodeid:
        _notebook_times[report.nodeid.split('[')[-1].rstrip(']')] = (report.duration, report.outcome)

def pytest_terminal_summary(terminalreporter):
    if not _notebook_times: return
    terminalreporter.section('notebooks, slowest first (budget: 180 s each)')
    for nb, (secs, outcome) in sorted(_notebook_times.items(), key=lambda kv: -kv[1][0]):
        terminalreporter.write_line(f'{secs:7.1f} s  {outcome:7s} {nb}')

def random_small_pipeline(scheduler):
    "A complete, randomly initialised small SD pipeline (64×64 pictures, 8×8×4 latents, a tokenizer trained on our captions)."
    import torch, diffusers as d
    from transformers import CLIPTextConfig, CLIPTextModel
    from sdfound import clip as sclip
    from sdfound.data import DigitScenes, caption
    from sdfound.tiny import tiny_unet
    from sdfound.vae import tiny_vae
    ds = DigitScenes(200, seed=0)
    tok = sclip.train_tokenizer([caption(ds.scene(i)) for i in range(len(ds))], vocab_size=200)
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=tok.model_max_length, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id)).eval()
    return d.StableDiffusionPipeline(vae=tiny_vae((8, 8, 16, 16)).eval(), text_encoder=text_encoder, tokenizer=tok,
                                     unet=tiny_unet((16, 32, 32), cross_attention_dim=32).eval(), scheduler=scheduler,
                                     safety_checker=None, feature_extractor=None, requires_safety_checker=False)
