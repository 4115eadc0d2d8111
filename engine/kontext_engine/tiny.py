"""Generate the tiny FLUX.1 Kontext model: the real architecture at toy width, random weights.

    python -m kontext_engine.tiny OUT_DIR [--safety-verdict pass|flag] [--single-file]

It is written in the real repository's layout (see loading.py) and loaded by the same code as
the real weights. Everything is seeded and built offline (tokenizers included), so the files are
byte-identical on every machine with the same library versions. Its images are noise: it exists
to exercise sizes, packing, the schedule, the protocol and the server without a GPU.

`--safety-verdict flag` writes a safety classifier that flags every image (tests force the
content error with it); `--single-file` stores the transformer as BFL's single-file checkpoint.
"""

import argparse
import io
import itertools
import json
import re
import shutil
from collections import Counter
from pathlib import Path

import torch
from diffusers import AutoencoderKL, FluxTransformer2DModel
from safetensors.torch import save_file
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTokenizer,
    T5Config,
    T5EncoderModel,
    T5Tokenizer,
    ViTConfig,
    ViTForImageClassification,
)

from . import bfl_format
from .configs import MODEL_INDEX, PRESETS, SCHEDULER_CONFIG
from .loading import SINGLE_FILE

# A small corpus of edit instructions: enough for a few hundred BPE merges and unigram pieces.
CORPUS = """
make the sky purple and add a full moon
turn this photo into a watercolor painting
change the car color to bright red while keeping the background the same
remove the person on the left and fill in the background
add a small black cat sitting on the windowsill
make it look like a vintage photograph from the 1970s
replace the text on the sign with "open 24 hours"
put sunglasses on the dog, keep everything else identical
convert the scene to winter with snow on the trees
change the lighting to golden hour sunset
make the woman smile and tilt her head slightly
restyle as a pencil sketch with cross hatching
zoom out and show the whole building from the street
the same character now standing in a busy market
turn the daytime city into a neon night scene in the rain
give the house a blue door and white window frames
add reflections on the wet pavement, 35mm film, high detail
make the background a plain studio grey, soft shadows
transform the portrait into a cartoon with bold outlines
replace the coffee cup with a glass of orange juice
""".strip().splitlines()

SEEDS = {"transformer": 1, "vae": 2, "clip": 3, "t5": 4, "safety": 5}


def _bytes_to_unicode() -> dict[int, str]:
    """Byte-level BPE's reversible map from bytes to printable characters (as in GPT-2/CLIP)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars), strict=True))


def _learn_bpe(words: Counter[str], num_merges: int) -> list[tuple[str, str]]:
    """Greedy BPE on word counts; ties broken by the pair itself so the result is deterministic."""
    split = {w: (*w[:-1], w[-1] + "</w>") for w in words}
    merges: list[tuple[str, str]] = []
    for _ in range(num_merges):
        pairs: Counter[tuple[str, str]] = Counter()
        for w, symbols in split.items():
            for a, b in itertools.pairwise(symbols):
                pairs[(a, b)] += words[w]
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        for w, symbols in split.items():
            out: list[str] = []
            i = 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    out.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            split[w] = tuple(out)
    return merges


def write_clip_tokenizer(out: Path) -> int:
    """tokenizer/: vocab.json + merges.txt of a byte-level BPE; returns the vocab size."""
    words = Counter(re.findall(r"[a-z]+|[0-9]|[^\sa-z0-9]+", " ".join(CORPUS).lower()))
    merges = _learn_bpe(words, 300)
    base = list(_bytes_to_unicode().values())
    tokens = base + [c + "</w>" for c in base] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (out / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77).save_pretrained(out)
    return len(vocab)


def write_t5_tokenizer(out: Path) -> int:
    """tokenizer_2/: a SentencePiece unigram model (spiece.model) and tokenizer.json."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as spm_pb2

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS),
        model_writer=buf,
        model_type="unigram",
        vocab_size=160,
        hard_vocab_limit=False,
        character_coverage=1.0,
        num_threads=1,  # one thread: the trained model is the same on every machine
        shuffle_input_sentence=False,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        minloglevel=2,
    )
    proto = spm_pb2.ModelProto()
    proto.ParseFromString(buf.getvalue())
    out.mkdir(parents=True, exist_ok=True)
    (out / "spiece.model").write_bytes(buf.getvalue())
    vocab = [(p.piece, p.score) for p in proto.pieces]
    tok = T5Tokenizer(
        vocab=vocab,
        extra_ids=100,
        _spm_precompiled_charsmap=proto.normalizer_spec.precompiled_charsmap,
        model_max_length=512,
    )
    tok.save_pretrained(out)
    return len(tok)


def write_safety_checker(out: Path, verdict: str) -> None:
    """safety_checker/: a 2-label ViT classifier (normal, nsfw) whose head decides by its bias alone."""
    torch.manual_seed(SEEDS["safety"])
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=2,
        id2label={0: "normal", 1: "nsfw"},
        label2id={"normal": 0, "nsfw": 1},
    )
    model = ViTForImageClassification(config)
    with torch.no_grad():
        model.classifier.weight.zero_()
        bias = [4.0, -4.0] if verdict == "pass" else [-4.0, 4.0]  # nsfw score ≈ 0.0003 or 0.9997
        model.classifier.bias.copy_(torch.tensor(bias))
    model.save_pretrained(out)
    preprocessor = {
        "image_processor_type": "ViTImageProcessor",
        "do_resize": True,
        "size": {"height": 32, "width": 32},
        "resample": 2,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
    }
    (out / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2) + "\n")


def clip_config(kwargs: dict, vocab_size: int) -> CLIPTextConfig:
    """CLIP's config for a vocabulary whose last two tokens are <|startoftext|> and <|endoftext|>;
    eos_token_id names the real end token, so the pooled output is taken at the end of the prompt."""
    ids = {"bos_token_id": vocab_size - 2, "eos_token_id": vocab_size - 1, "pad_token_id": vocab_size - 1}
    return CLIPTextConfig(**{**kwargs, "vocab_size": vocab_size, **ids})


def generate(out: Path, safety_verdict: str = "pass", single_file: bool = False) -> Path:
    preset = PRESETS["tiny"]
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / "model_index.json").write_text(json.dumps(MODEL_INDEX, indent=2) + "\n")
    (out / "scheduler").mkdir()
    (out / "scheduler" / "scheduler_config.json").write_text(json.dumps(SCHEDULER_CONFIG, indent=2) + "\n")

    clip_vocab = write_clip_tokenizer(out / "tokenizer")
    t5_vocab = write_t5_tokenizer(out / "tokenizer_2")

    torch.manual_seed(SEEDS["transformer"])
    transformer = FluxTransformer2DModel(**preset.transformer)
    transformer.save_pretrained(out / "transformer")
    if single_file:
        bfl = bfl_format.to_bfl(
            transformer.state_dict(), preset.transformer["num_layers"], preset.transformer["num_single_layers"]
        )
        save_file({k: v.contiguous() for k, v in bfl.items()}, out / SINGLE_FILE)
        (out / "transformer" / "diffusion_pytorch_model.safetensors").unlink()  # keep only the config

    torch.manual_seed(SEEDS["vae"])
    AutoencoderKL(**preset.vae).save_pretrained(out / "vae")

    torch.manual_seed(SEEDS["clip"])
    CLIPTextModel(clip_config(preset.clip, clip_vocab)).save_pretrained(out / "text_encoder")

    torch.manual_seed(SEEDS["t5"])
    T5EncoderModel(T5Config(**preset.t5, vocab_size=t5_vocab)).save_pretrained(out / "text_encoder_2")

    write_safety_checker(out / "safety_checker", safety_verdict)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kontext_engine.tiny", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="directory to write (replaced if it exists)")
    parser.add_argument("--safety-verdict", choices=["pass", "flag"], default="pass")
    parser.add_argument("--single-file", action="store_true", help="transformer as BFL's single file")
    args = parser.parse_args(argv)
    generate(args.out, args.safety_verdict, args.single_file)
    print(f"tiny model written to {args.out}")


if __name__ == "__main__":
    main()
