"""The magic function: its gradient by finite differences equals autograd's, and climbing it from noise draws digits."""
import pytest, torch
import torch.nn.functional as F
from sdfound.data import GrayDigits
from sdfound.magic import (NOT_A_DIGIT, DigitClassifier, ascend, autograd_gradient, digit_batch, digit_logprob, fd_gradient,
                           load_magic, magic_loss, random_noise, save_magic, scramble)


def test_fd_gradient_of_a_known_function():
    x = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(fd_gradient(lambda v: (v ** 2).sum(), x, eps=1e-7), 2 * x, atol=1e-5, rtol=0)

def test_finite_differences_match_autograd():
    torch.manual_seed(0)
    model = DigitClassifier().double().eval()
    x = torch.rand(1, 1, 28, 28, dtype=torch.float64)
    f = lambda v: digit_logprob(model, v).sum()
    g_fd, g_ag = fd_gradient(f, x), autograd_gradient(f, x)
    assert (g_fd - g_ag).abs().max() < 1e-4 * g_ag.abs().max()  # forward differences in float64: ~5 correct digits
    assert F.cosine_similarity(g_fd.flatten(), g_ag.flatten(), dim=0) > 1 - 1e-8

def test_digit_logprob_is_log_of_one_minus_not_a_digit():
    torch.manual_seed(0)
    model, x = DigitClassifier().eval(), torch.rand(5, 1, 28, 28)
    p = model(x).softmax(-1)
    torch.testing.assert_close(digit_logprob(model, x).exp(), 1 - p[:, NOT_A_DIGIT])
    torch.testing.assert_close(digit_logprob(model, x, 3).exp(), p[:, 3])
    mixed = digit_logprob(model, x, torch.tensor([-1, 2, -1, 7, 0]))  # -1 means "any digit"
    torch.testing.assert_close(mixed.exp(), torch.stack([1 - p[0, 10], p[1, 2], 1 - p[2, 10], p[3, 7], p[4, 0]]))

def test_training_batches_have_soft_targets_and_scrambled_negatives():
    digits, labels = torch.rand(50, 1, 28, 28), torch.randint(0, 10, (50,))
    b = digit_batch(digits, labels, step=3, batch_size=32)
    torch.testing.assert_close(b['target'].sum(-1), torch.ones(32))
    assert (b['target'][:8, NOT_A_DIGIT] == 1).all() and b['x'].min() >= 0 and b['x'].max() <= 1
    assert torch.equal(digit_batch(digits, labels, step=3, batch_size=32)['x'], b['x'])  # a pure function of the step
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(scramble(x).flatten(1).sort(1).values, x.flatten(1).sort(1).values)  # same ink, other places
    assert magic_loss(DigitClassifier(), b) > 0

def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = DigitClassifier(width=8).eval()
    save_magic(model, tmp_path)
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(load_magic(tmp_path)(x), model(x), atol=1e-2, rtol=1e-2)  # fp16 weights
    with pytest.raises(FileNotFoundError, match='no magic-function weights'): load_magic(tmp_path / 'missing')

@pytest.fixture(scope='module')
def magic(): return load_magic()

@pytest.fixture(scope='module')
def real_digits():
    g = GrayDigits(1000, seed=7)
    return torch.stack([g[i]['image'] for i in range(len(g))]), torch.tensor([g[i]['label'] for i in range(len(g))])

def test_shipped_classifier_reads_digits_and_rejects_noise(magic, real_digits):
    x, y = real_digits
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        assert (magic(x)[:, :10].argmax(-1) == y).float().mean() > 0.95
        assert digit_logprob(magic, x).exp().mean() > 0.9
        assert digit_logprob(magic, random_noise(500, g)).exp().mean() < 0.1
        assert digit_logprob(magic, scramble(x[:500], g)).exp().mean() < 0.1

def test_climbing_from_noise_raises_the_digit_probability(magic):
    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    climbed = ascend(magic, x, steps=100)[-1]
    with torch.no_grad(): before, after = digit_logprob(magic, x).exp(), digit_logprob(magic, climbed).exp()
    assert before.mean() < 0.2 and after.mean() > 0.9
    assert climbed.min() >= 0 and climbed.max() <= 1

def test_climbing_for_a_digit_draws_something_shaped_like_that_digit(magic, real_digits):
    "Judged without the classifier: the climbed picture correlates best with the average real picture of the asked digit."
    x, y = real_digits
    templates = torch.stack([x[y == d].mean(0).flatten() for d in range(10)])
    templates = F.normalize(templates - templates.mean(1, keepdim=True), dim=1)
    asked = torch.arange(10).repeat(2)
    climbed = ascend(magic, torch.rand(20, 1, 28, 28, generator=torch.Generator().manual_seed(1)), steps=200, digit=asked)[-1].flatten(1)
    nearest = (F.normalize(climbed - climbed.mean(1, keepdim=True), dim=1) @ templates.T).argmax(-1)
    # chance is 0.1; the exact share moves with the libraries that render the fonts (13 of 20 with Pillow 13.0, matplotlib 3.11)
    assert (nearest == asked).float().mean() >= 0.5
