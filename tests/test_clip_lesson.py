"""The CLIP lesson: the text encoder written by hand equals `CLIPTextModel`, and the shipped CLIP matches captions to pictures."""
import pytest, torch
from transformers import CLIPModel, CLIPTextConfig, CLIPTextModel, CLIPTokenizer
from sdfound.clip import (causal_mask, image_embeddings, pooled_output, quick_gelu, self_attention, text_embeddings,
                          text_encoder_by_hand)
from sdfound.data import COLOURS, DIGIT_WORDS, DigitScenes


def random_text_model(hidden_act='quick_gelu', seed=0):
    torch.manual_seed(seed)
    config = CLIPTextConfig(vocab_size=99, hidden_size=48, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
                            max_position_embeddings=20, hidden_act=hidden_act, bos_token_id=0, eos_token_id=1, pad_token_id=1)
    model = CLIPTextModel(config).eval()
    with torch.no_grad():  # layer norms start at weight 1, bias 0: make them random too, so they are really tested
        for name, p in model.named_parameters():
            if 'layer_norm' in name: p.add_(torch.randn_like(p) * 0.1)
    return model

@pytest.mark.parametrize('hidden_act', ['quick_gelu', 'gelu'])
def test_text_encoder_by_hand_matches_clip_text_model(hidden_act):
    model = random_text_model(hidden_act)
    ids = torch.randint(2, 99, (3, 20), generator=torch.Generator().manual_seed(1))
    ids[:, 0], ids[0, 7:], ids[1, 12:], ids[2, -1] = 0, 1, 1, 1  # start token, then end-of-text padding
    with torch.no_grad():
        ref = model(ids)
        ours = text_encoder_by_hand(model, ids)
        torch.testing.assert_close(ours, ref.last_hidden_state, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(pooled_output(ours, ids, 1), ref.pooler_output, rtol=1e-5, atol=1e-5)

def test_causal_mask_hides_later_tokens():
    m = causal_mask(4)
    assert (m.triu(1) == float('-inf')).sum() == 6 and (m.tril() == 0).all()
    # the first token's output can't depend on the others
    model = random_text_model()
    ids = torch.randint(2, 99, (2, 6), generator=torch.Generator().manual_seed(2)); ids[1, 0] = ids[0, 0]
    with torch.no_grad(): h = text_encoder_by_hand(model, ids)
    torch.testing.assert_close(h[0, 0], h[1, 0])

def test_self_attention_matches_clip_attention_module():
    model = random_text_model()
    attn, x = model.encoder.layers[0].self_attn, torch.randn(2, 5, 48)
    with torch.no_grad():
        full = self_attention(attn, x, torch.zeros(5, 5))
        assert torch.allclose(full, attn(x)[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(quick_gelu(torch.tensor([0.0, 1.0])), torch.tensor([0.0, torch.sigmoid(torch.tensor(1.702)).item()]))

@pytest.fixture(scope='module')
def shipped():
    from sdfound.core import models_dir
    path = models_dir() / 'tiny-clip'
    return CLIPModel.from_pretrained(path, dtype=torch.float32).eval(), CLIPTokenizer.from_pretrained(path)

def test_text_encoder_by_hand_matches_the_shipped_clip(shipped):
    clip, tok = shipped
    ids = tok(['a red 7 on a blue background', 'the digit two in green'], padding='max_length', return_tensors='pt').input_ids
    with torch.no_grad():
        torch.testing.assert_close(text_encoder_by_hand(clip.text_model, ids), clip.text_model(ids).last_hidden_state, rtol=1e-5, atol=1e-5)

def test_shipped_clip_matches_captions_to_their_pictures(shipped):
    clip, tok = shipped
    ds = DigitScenes(32, seed=11, templates=(0,))  # captions naming digit, foreground and background
    sim = text_embeddings(clip, tok, [ds[i]['caption'] for i in range(32)]) @ image_embeddings(clip, torch.stack([ds[i]['image'] for i in range(32)])).T
    assert (sim.argmax(1) == torch.arange(32)).float().mean() >= 0.5  # chance: 1/32

def test_paraphrases_are_closer_than_captions_with_another_colour(shipped):
    "Same digit and colours in other words ('7' → 'seven', another template) beats the same words with another colour."
    clip, tok = shipped
    fgs = [c for c in COLOURS if c != 'blue']
    a = text_embeddings(clip, tok, [f'a {c} {d} on a blue background' for d in range(10) for c in fgs]).view(10, len(fgs), -1)
    b = text_embeddings(clip, tok, [f'the number {DIGIT_WORDS[d]} written in {c} on a blue background' for d in range(10) for c in fgs]).view(10, len(fgs), -1)
    sims = torch.einsum('dce,dye->dcy', a, b)  # same digit: [digit, colour of a, colour of b]
    same = torch.eye(len(fgs), dtype=bool).expand_as(sims)
    assert sims[same].mean() > sims[~same].mean() + 0.2

def test_shipped_clip_reads_the_foreground_colour_zero_shot(shipped):
    clip, tok = shipped
    ds = DigitScenes(50, seed=12)
    pics = image_embeddings(clip, torch.stack([ds[i]['image'] for i in range(50)]))
    right = 0
    for i in range(50):
        s = ds.scene(i)
        options = [c for c in COLOURS if c != s.bg]
        right += options[int((text_embeddings(clip, tok, [f'a {c} {s.digit} on a {s.bg} background' for c in options]) @ pics[i]).argmax())] == s.fg
    assert right / 50 >= 0.8  # chance: 1/7

# --- text embeddings edited by hand (lesson 06)
@pytest.fixture(scope='module')
def tiny_pipe():
    from sdfound.pipelines import load_pipeline
    return load_pipeline('tiny')

def test_text_states_built_from_the_two_tables_are_the_pipelines(tiny_pipe):
    from sdfound.clip import encode_vectors, tokenize
    from sdfound.sampling import encode_text
    te = tiny_pipe.text_encoder
    table, positions = te.embeddings.token_embedding.weight, te.embeddings.position_embedding.weight
    for prompt in ['a red 7 on a blue background', 'the digit two in white', '']:
        ids = tokenize(tiny_pipe.tokenizer, [prompt])
        with torch.no_grad(): ours = encode_vectors(te, table[ids] + positions[:ids.shape[1]])
        torch.testing.assert_close(ours, encode_text(tiny_pipe.tokenizer, te, prompt), rtol=1e-5, atol=1e-5)

def test_a_learned_word_written_in_by_hand_is_what_load_textual_inversion_gives():
    from safetensors.torch import load_file
    from sdfound.clip import encode_vectors, with_learned_word
    from sdfound.concepts import concepts_dir
    from sdfound.pipelines import load_pipeline
    pipe = load_pipeline('tiny')
    te, path = pipe.text_encoder, concepts_dir() / 'halloween' / 'learned_embeds.safetensors'
    (word, vectors), = load_file(path).items()
    table, positions = te.embeddings.token_embedding.weight.detach().clone(), te.embeddings.position_embedding.weight
    prompts = [f'a 3 in {word} colours', f'{word} 8', f'a green 2 on a red background, {word}']
    with torch.no_grad(): ours = [encode_vectors(te, with_learned_word(pipe.tokenizer, table, p, word, vectors) + positions) for p in prompts]
    pipe.load_textual_inversion(path)
    for p, mine in zip(prompts, ours):
        torch.testing.assert_close(mine, pipe.encode_prompt(p, pipe.device, 1, False)[0], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match='once'): with_learned_word(pipe.tokenizer, table, 'a 3', word, vectors)
