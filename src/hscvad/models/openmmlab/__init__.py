"""The paper's models (docs/method.md §2) through OpenMMLab and timm, behind the stage interfaces.

=====================  ==============================================  =========================
backend (config key)   model                                           paper
=====================  ==============================================  =========================
``mmdet_yolov3``       mmdet 3.3 YOLOv3 DarkNet-53, COCO, 608 px       YOLOv3 (mmdet)
``mmdet_bytetrack``    mmdet 3.3 ByteTracker (``mmdet_ocsort``: OC-SORT) FairMOT (mmtrack)
``mmpose_hrnet``       mmpose 1.3 top-down HRNet-w32, COCO, 256x192    HRNet (mmpose)
``mmaction_posec3d``   mmaction2 1.2 PoseConv3D SlowOnly-R50, NTU-60   PoseConv3D (mmaction2)
``mmseg_deeplabv3plus`` mmseg 1.2 DeepLabV3+ R50-D8, Cityscapes          DeepLabV3+ (mmseg)
``timm_vit``           timm ViT-L/16 (1024-d pooled token)             ViT-L/16
=====================  ==============================================  =========================

mmtrack 0.14 cannot be installed beside these (it needs mmcv-full 1.x and mmdet 2.x, which uses
the same ``mmdet`` import name); mmdet 3.x took over its trackers, and FairMOT is in neither, so
ByteTrack on the YOLOv3 detections stands in for FairMOT. Model definitions come from the configs
shipped inside the installed packages (``<package>/.mim/configs``); weights from the path in
config.yaml, loaded by :func:`loading.load_checkpoint` (checksum first, then ``torch.load`` with
``weights_only=True``). With ``weights: null`` a backend runs with random weights (tests, smoke
runs, timing), and says so in its ``describe()``.

Every import of OpenMMLab happens inside these classes, so the offline pipeline never needs them.
One module per stage family (``detection``: YOLOv3 and the trackers, ``pose``, ``motion``,
``scene``, ``appearance``: timm's ViT); ``loading`` holds the shims, config lookup, checkpoint
loading and the random-weights mode they share. The registry imports a module when one of its
backends is first asked for (``hscvad.models.registry.BUILTIN_BACKENDS``).
"""
