"""Test media made on the spot: speech with known phone timings, and public-domain portraits.

Nothing is downloaded. Speech comes from Debian's Festival (with its US 'slt' HTS voice, which
reports phone end times) or espeak-ng; portraits from packages already installed:
``skimage.data.astronaut()`` (NASA, public domain) and matplotlib's sample ``grace_hopper.jpg``
(US Navy, public domain).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from talker.errors import apt_get_install


@dataclass(frozen=True)
class Phone:
    """One phone of synthesised speech: start and end in seconds, Festival's phone name (e.g. 'p', 'aa', 'pau')."""

    start: float
    end: float
    phone: str


def festival_speech(text: str, wav_path: Path) -> list[Phone]:
    """Speak ``text`` with Festival's slt voice into ``wav_path`` (RIFF WAV, 32 kHz mono).

    Returns the phones with their times; pauses are named 'pau'.
    """
    if shutil.which("festival") is None:
        raise RuntimeError(f"festival is not installed: {apt_get_install('festival', 'festvox-us-slt-hts')}")
    wav_path = Path(wav_path)
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    with tempfile.TemporaryDirectory() as tmp:
        segs = Path(tmp) / "out.segs"
        script = Path(tmp) / "say.scm"
        script.write_text(
            "(voice_cmu_us_slt_arctic_hts)\n"
            f'(set! utt1 (Utterance Text "{escaped}"))\n'
            "(utt.synth utt1)\n"
            f'(utt.save.wave utt1 "{wav_path}" \'riff)\n'
            f'(utt.save.segs utt1 "{segs}")\n'
        )
        subprocess.run(["festival", "-b", str(script)], check=True, capture_output=True, timeout=120)
        phones, start = [], 0.0
        for line in segs.read_text().splitlines():
            parts = line.split()
            if len(parts) != 3 or parts[0] == "#":
                continue
            end = float(parts[0])
            phones.append(Phone(start, end, parts[2]))
            start = end
    return phones


def festival_sentences(sentences: list[str], wav_path: Path, gap_s: float = 0.6) -> list[Phone]:
    """Speak each sentence with Festival and join them with ``gap_s`` seconds of digital silence.

    Returns the phones of the whole file; each gap is one 'pau' phone (merged with the sentences'
    own leading and trailing pauses).
    """
    import soundfile as sf

    wav_path = Path(wav_path)
    pieces, phones, offset, rate = [], [], 0.0, None
    with tempfile.TemporaryDirectory() as tmp:
        for k, sentence in enumerate(sentences):
            part = Path(tmp) / f"s{k}.wav"
            sentence_phones = festival_speech(sentence, part)
            data, rate = sf.read(part, dtype="float32")
            if k:
                pieces.append(np.zeros(int(round(gap_s * rate)), np.float32))
                phones.append(Phone(offset, offset + gap_s, "pau"))
                offset += gap_s
            pieces.append(data)
            phones += [Phone(p.start + offset, p.end + offset, p.phone) for p in sentence_phones]
            offset += len(data) / rate
    sf.write(wav_path, np.concatenate(pieces), rate)
    merged: list[Phone] = []
    for p in phones:
        if merged and p.phone == "pau" and merged[-1].phone == "pau":
            merged[-1] = Phone(merged[-1].start, p.end, "pau")
        else:
            merged.append(p)
    return merged


def espeak_speech(text: str, wav_path: Path, voice: str = "en-us") -> None:
    """Speak ``text`` with espeak-ng into ``wav_path`` (WAV, 22.05 kHz mono)."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError(f"espeak-ng is not installed: {apt_get_install('espeak-ng')}")
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(wav_path), text], check=True, capture_output=True, timeout=60)


def astronaut() -> np.ndarray:
    """(512, 512, 3) uint8 RGB: Eileen Collins, NASA portrait (public domain), via scikit-image."""
    from skimage import data

    return data.astronaut()


def grace_hopper() -> np.ndarray:
    """(600, 512, 3) uint8 RGB: Grace Hopper, US Navy portrait (public domain), via matplotlib."""
    import matplotlib.cbook as cbook
    from PIL import Image

    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as im:
        return np.asarray(im.convert("RGB"))


def save_png(rgb: np.ndarray, path: Path) -> Path:
    from PIL import Image

    Image.fromarray(rgb).save(path)
    return Path(path)


def read_wav_16k(path: Path) -> np.ndarray:
    """(N,) float32 mono at 16 kHz from a WAV file, resampled with librosa (test-side decoding)."""
    import librosa
    import soundfile as sf

    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return librosa.resample(data.mean(axis=1), orig_sr=sr, target_sr=16000).astype(np.float32)
