import torch, pytest
from transformers import CLIPModel, CLIPTokenizer
from sdfound.clip import train_tokenizer, tokenize, tiny_clip_config, contrastive_loss, clip_loss
from sdfound.data import DigitScenes

@pytest.fixture(scope='module')
def tok():
    ds = DigitScenes(2000, seed=0)
    return train_tokenizer([ds[i]['caption'] for i in range(2000)])

def test_tokenizer_is_clip_format_and_round_trips(tok, tmp_path):
    tok.save_pretrained(tmp_path)
    loaded = CLIPTokenizer.from_pretrained(tmp_path)
    ids = tokenize(loaded, ['a red 7 on a blue background', 'the digit seven in red'])
    assert ids.shape == (2, loaded.model_max_length)
    assert ids[0, 0] == loaded.bos_token_id and loaded.pad_token_id == loaded.eos_token_id
    assert loaded.decode(ids[0], skip_special_tokens=True).strip() == 'a red 7 on a blue background'
    assert tokenize(loaded, ['a red 7'])[0].tolist() == tokenize(tok, ['a red 7'])[0].tolist()
    # whole caption words are single tokens; an unseen word still tokenizes into pieces
    assert len(loaded('red').input_ids) == 3 and len(loaded('zebra').input_ids) > 3

def test_contrastive_loss_matches_clipmodel(tok):
    torch.manual_seed(0)
    model = CLIPModel(tiny_clip_config(tok)).eval()
    batch = dict(input_ids=tokenize(tok, [f'a red {d} on a blue background' for d in range(6)]), pixel_values=torch.randn(6, 3, 64, 64))
    ref = model(**batch, return_loss=True).loss
    torch.testing.assert_close(clip_loss(model, batch), ref, rtol=1e-5, atol=1e-5)

def test_contrastive_loss_is_small_when_pairs_match():
    e = torch.nn.functional.one_hot(torch.arange(8), 8).float()
    scale = torch.tensor(100.0).log()
    assert contrastive_loss(e, e, scale) < 1e-3 < contrastive_loss(e, e.roll(1, 0), scale)

def test_tokenizer_ids_are_the_same_in_every_process():
    # the hash order inside BPE training differs between processes; the ids of the captions' words must not
    import subprocess, sys
    code = ("from sdfound.clip import train_tokenizer, tokenize; from sdfound.data import DigitScenes, caption; "
            "ds = DigitScenes(300, seed=1); caps = [caption(ds.scene(i)) for i in range(300)]; "
            "t = train_tokenizer(caps); print(tokenize(t, caps[:50]).tolist())")
    outs = {subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout for _ in range(3)}
    assert len(outs) == 1

def test_same_colour_batches_hold_every_digit_in_shared_colours():
    from sdfound.clip import same_colour_batches
    g = torch.Generator().manual_seed(0)
    n = 4000  # 10 digits × 8 × 8 colour keys: every (digit, pair) bucket is filled
    labels = dict(digit=torch.randint(0, 10, (n,), generator=g), fg=torch.randint(0, 8, (n,), generator=g), bg=torch.randint(0, 8, (n,), generator=g))
    pick = same_colour_batches(labels, groups=5, seed=3)
    idx = pick(7)
    assert len(idx) == 50 and torch.equal(idx, pick(7)) and not torch.equal(idx, pick(8))
    for group in idx.view(5, 10):
        assert len(set(labels['fg'][group].tolist())) == 1 and len(set(labels['bg'][group].tolist())) == 1
        assert sorted(labels['digit'][group].tolist()) == list(range(10))
    pairs = {(int(labels['fg'][g[0]]), int(labels['bg'][g[0]])) for g in idx.view(5, 10)}
    assert len(pairs) == 5  # five different colour pairs

def test_ink_clip_embeds_captions_and_pictures_and_trains_on_the_clip_loss():
    from sdfound.clip import InkClip
    m = InkClip(vocab_size=50, max_length=8, eos_token_id=2, pad_token_id=2, bos_token_id=1)
    ids = torch.tensor([[1, 5, 6, 2, 2, 2, 2, 2], [1, 7, 2, 2, 2, 2, 2, 2]])
    assert m.get_text_features(ids).shape == (2, 48)
    assert m.get_image_features(torch.zeros(2, 3, 64, 64)).shape == (2, 48)
    # the caption vector is the mean up to the first end-of-text: what the padding after it holds changes nothing
    padded = ids.clone(); padded[0, 5:] = 9
    assert torch.allclose(m.get_text_features(ids)[0], m.get_text_features(padded)[0], atol=1e-6)
    opt = torch.optim.Adam(m.parameters(), 1e-2)
    batch = dict(input_ids=ids, pixel_values=torch.rand(2, 3, 64, 64) * 2 - 1)
    first = clip_loss(m, batch).item()
    for _ in range(20):
        opt.zero_grad(); clip_loss(m, batch).backward(); opt.step()
    assert clip_loss(m, batch).item() < first / 10

def test_shipped_ink_clip_reads_the_digit_and_the_colour():
    # bench/ink_clip.py measured the lesson's quiz on 200 pictures; 100 other pictures here, with room for their noise
    from sdfound.clip import load_ink_clip, zero_shot_quiz
    from sdfound.core import models_dir
    tokenizer = CLIPTokenizer.from_pretrained(models_dir() / 'tiny-clip')
    right = zero_shot_quiz(load_ink_clip(), tokenizer, DigitScenes(100, seed=77))
    assert right['digit'] >= 0.85 and right['colour'] >= 0.9, right
