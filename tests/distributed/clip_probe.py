"""Run by tests/test_distributed.py, with one process or under torchrun: CLIP's contrastive loss and its gradients for
one global batch, each process holding its share."""
import os, sys, torch, torch.distributed as dist
from accelerate import Accelerator
from transformers import CLIPModel
from sdfound.clip import clip_loss, tiny_clip_config, train_tokenizer, tokenize
from sdfound.train import process_share, end_processes
from sdfound.data import DigitScenes

state = Accelerator()  # reads how torchrun or accelerate launch set the processes up
ds = DigitScenes(8, seed=0)
tok = train_tokenizer([ds[i]['caption'] for i in range(8)], vocab_size=120)
torch.manual_seed(0)
model = CLIPModel(tiny_clip_config(tok, width=32, layers=1))
batch = dict(input_ids=tokenize(tok, [ds[i]['caption'] for i in range(8)]), pixel_values=torch.stack([ds[i]['image'] for i in range(8)]))
share = process_share(batch, state.process_index, state.num_processes)
loss = clip_loss(model, share)
loss.backward()
grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
if state.num_processes > 1:  # fit's reduction: the mean of the processes' gradients
    for g in grads.values(): dist.all_reduce(g); g /= state.num_processes
torch.save(dict(loss=loss.item(), grads=grads), f"{sys.argv[1]}/clip{os.environ.get('RANK', 'single')}.pt")
end_processes()  # a clean exit for every process
