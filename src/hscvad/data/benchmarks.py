"""The published benchmarks: what a complete copy holds, where it comes from, and how to get it.

``datasets.<name>.benchmark`` names one of :data:`BENCHMARKS`; the rule ``check_dataset`` compares a
copy with it (videos per split, frames per test video, abnormal frames) before a run's results can be
mistaken for the benchmark's. Counts checked on the official ground truth (``../shared/README.md``):
Ped2 from ``UCSDped2.m`` and the pixel masks (they agree), Avenue from the ``volLabel`` masks,
ShanghaiTech and its Mixtures from ``test_frame_mask/*.npy``.

Video names are compared by their numbers (``Test001`` of the official UCSD layout is ``01`` of the
frames layout; ShanghaiTech's ``01_0014`` is (1, 14)).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    train_videos: int
    test_frames: dict[str, int]  # frames per test video, by canonical name
    abnormal_frames: int
    source: str  # where the data comes from
    licence: str  # the terms as published
    get: str  # the one-line instruction: a fetch rule, or where to place what
    layout: str  # the folders and files the adapter reads
    train_names: tuple[str, ...] = field(default=())  # when the training videos' names are fixed

    @property
    def test_videos(self) -> int:
        return len(self.test_frames)

    @property
    def total_test_frames(self) -> int:
        return sum(self.test_frames.values())


def video_key(name: str) -> tuple:
    """The numbers in a video's name (``Test001`` and ``01`` -> (1,)); the name itself without any."""
    nums = re.findall(r"\d+", name)
    return tuple(int(n) for n in nums) if nums else (name,)


def _numbered(n: int) -> dict[str, int]:
    return {f"{i:02d}": 0 for i in range(1, n + 1)}


PED2_TEST = {"01": 180, "02": 180, "03": 150, "04": 180, "05": 150, "06": 180, "07": 180, "08": 180,
             "09": 120, "10": 150, "11": 180, "12": 180}
AVENUE_TEST = {"01": 1439, "02": 1211, "03": 923, "04": 947, "05": 1007, "06": 1283, "07": 605, "08": 36,
               "09": 1175, "10": 841, "11": 472, "12": 1271, "13": 549, "14": 507, "15": 1001, "16": 740,
               "17": 426, "18": 294, "19": 248, "20": 273, "21": 76}
SHANGHAITECH_TEST = {
    "01_0014": 265, "01_0015": 433, "01_0016": 337, "01_0025": 601, "01_0026": 505, "01_0027": 409,
    "01_0028": 457, "01_0029": 313, "01_0030": 409, "01_0051": 337, "01_0052": 337, "01_0053": 457,
    "01_0054": 577, "01_0055": 313, "01_0056": 529, "01_0063": 193, "01_0064": 289, "01_0073": 289,
    "01_0076": 265, "01_0129": 241, "01_0130": 337, "01_0131": 289, "01_0132": 265, "01_0133": 217,
    "01_0134": 433, "01_0135": 409, "01_0136": 529, "01_0138": 313, "01_0139": 217, "01_0140": 241,
    "01_0141": 313, "01_0162": 193, "01_0163": 265, "01_0177": 317, "02_0128": 457, "02_0161": 337,
    "02_0164": 361, "03_0031": 529, "03_0032": 409, "03_0033": 313, "03_0035": 385, "03_0036": 457,
    "03_0039": 481, "03_0041": 457, "03_0059": 433, "03_0060": 385, "03_0061": 241, "04_0001": 553,
    "04_0003": 937, "04_0004": 865, "04_0010": 505, "04_0011": 313, "04_0012": 361, "04_0013": 361,
    "04_0046": 529, "04_0050": 337, "05_0017": 433, "05_0018": 481, "05_0019": 649, "05_0020": 649,
    "05_0021": 409, "05_0022": 337, "05_0023": 769, "05_0024": 433, "06_0144": 241, "06_0145": 217,
    "06_0147": 265, "06_0150": 265, "06_0153": 217, "06_0155": 265, "07_0005": 409, "07_0006": 385,
    "07_0007": 481, "07_0008": 457, "07_0009": 313, "07_0047": 601, "07_0048": 241, "07_0049": 481,
    "08_0044": 313, "08_0058": 337, "08_0077": 457, "08_0078": 217, "08_0079": 241, "08_0080": 289,
    "08_0156": 337, "08_0157": 313, "08_0158": 337, "08_0159": 265, "08_0178": 265, "08_0179": 337,
    "09_0057": 361, "10_0037": 433, "10_0038": 241, "10_0042": 433, "10_0074": 601, "10_0075": 505,
    "11_0176": 337, "12_0142": 601, "12_0143": 265, "12_0148": 313, "12_0149": 241, "12_0151": 289,
    "12_0152": 361, "12_0154": 385, "12_0173": 217, "12_0174": 337, "12_0175": 265,

}

_SHT_SOURCE = ("ShanghaiTech Campus, Liu et al., CVPR 2018: https://svip-lab.github.io/dataset/campus_dataset.html "
               "(shanghaitech.tar.gz, linked from that page; no stable direct URL)")
_SHT_LICENCE = "published for academic research; cite Liu et al., CVPR 2018 (no other terms stated on the page)"
_SHT_LAYOUT = ("training/videos/SS_VVV.avi (330 videos), testing/frames/SS_VVVV/NNN.jpg (107 folders), "
               "testing/test_frame_mask/SS_VVVV.npy (107 frame masks)")
_SHT_GET = ("download shanghaitech.tar.gz from https://svip-lab.github.io/dataset/campus_dataset.html, unpack it and "
            "place (or link) its training/ and testing/ folders under {root}")
_MIX_LAYOUT = _SHT_LAYOUT + "; <mixtures_dir>/<mixture>/{{train,test}}.txt and test_frame_mask/SS_VVVV.npy"
_MIX_GET = _SHT_GET + (", and the mixture lists and relabelled masks (HSC's data/mixture, "
                       "github.com/shengyangsun/HSC_VAD) under {mixtures_dir}")


def _mixture(name, mixture, train_videos, test_names, abnormal):
    return Benchmark(
        name=name, title=f"ShanghaiTech scene-dependent Mixture {mixture} (Sun & Gong, CVPR 2023)",
        train_videos=train_videos, test_frames={v: SHANGHAITECH_TEST[v] for v in test_names},
        abnormal_frames=abnormal, source=_SHT_SOURCE + "; mixture lists: github.com/shengyangsun/HSC_VAD data/mixture",
        licence=_SHT_LICENCE + "; the mixture lists: MIT (HSC_VAD repository)", get=_MIX_GET, layout=_MIX_LAYOUT)


BENCHMARKS: dict[str, Benchmark] = {
    "ped2": Benchmark(
        name="ped2", title="UCSD Ped2 (Mahadevan et al., CVPR 2010)", train_videos=16, test_frames=PED2_TEST,
        abnormal_frames=1648,
        source="http://www.svcl.ucsd.edu/projects/anomaly/dataset.htm (UCSD_Anomaly_Dataset.tar.gz)",
        licence="published by SVCL, UC San Diego, for research; cite Mahadevan et al., CVPR 2010",
        get="snakemake fetch_ped2 --cores 1 (downloads the official archive into {root})",
        layout=("official: Train/Train001/001.tif, Test/Test001/001.tif, Test/Test001_gt/, Test/UCSDped2.m; "
                "or frames: training/frames/01/000.jpg, testing/frames/01/, testing/UCSDped2.m, "
                "testing/pixel_masks/01/"),
        train_names=tuple(_numbered(16))),
    "avenue": Benchmark(
        name="avenue", title="CUHK Avenue (Lu, Shi & Jia, ICCV 2013)", train_videos=16, test_frames=AVENUE_TEST,
        abnormal_frames=3712,
        source=("http://www.cse.cuhk.edu.hk/leojia/projects/detectabnormal/dataset.html "
                "(Avenue_Dataset.zip and ground_truth_demo.zip)"),
        licence="published by CUHK for research; cite Lu, Shi & Jia, ICCV 2013 (no other terms stated on the page)",
        get="snakemake fetch_avenue --cores 1 (downloads both official archives into {root})",
        layout=("training_videos/NN.avi (16), testing_videos/NN.avi (21), "
                "ground_truth_demo/testing_label_mask/N_label.mat (21, volLabel pixel masks)"),
        train_names=tuple(_numbered(16))),
    "shanghaitech": Benchmark(
        name="shanghaitech", title="ShanghaiTech Campus (Liu et al., CVPR 2018)", train_videos=330,
        test_frames=SHANGHAITECH_TEST, abnormal_frames=17326, source=_SHT_SOURCE, licence=_SHT_LICENCE,
        get=_SHT_GET, layout=_SHT_LAYOUT),
    "shanghaitech_mix_01_02": _mixture(
        "shanghaitech_mix_01_02", "01+02", 33,
        "01_0014 01_0015 01_0030 01_0053 01_0064 01_0129 01_0130 01_0131 01_0134 01_0135 01_0136 01_0141 "
        "02_0128 02_0161 02_0164".split(), 2338),
    "shanghaitech_mix_04_08": _mixture(
        "shanghaitech_mix_04_08", "04+08", 53,
        "04_0001 04_0004 04_0010 04_0011 04_0012 04_0013 04_0046 04_0050 08_0058 08_0077 08_0078 08_0179".split(),
        1968),
    "shanghaitech_mix_10_12": _mixture(
        "shanghaitech_mix_10_12", "10+12", 31,
        "10_0037 10_0038 10_0042 10_0074 10_0075 12_0149 12_0152 12_0173 12_0174 12_0175".split(), 1974),
}
