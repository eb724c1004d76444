"""Development kit: training, the synthetic scene generator and their data sets.

Nothing of the runtime (backends, pipeline, ROS nodes, runtime tools) imports this package
(a test walks the imports). It may import the runtime: the model definition
(``model.yolox``), the ONNX helpers (``onnx_model``), the stages, rosbag writing and the COCO
scorer.

- ``scene``, ``sprites``: the procedural driving-scene generator; ``dataset``: frames, seeds
  and COCO files from it; ``scene_bag``: a rosbag of generated scenes with ground truth.
- ``train``, ``loss``, ``synthetic``: training YOLOX (PyTorch, ``train`` extra); ``export``:
  checkpoint to stamped ONNX; ``evaluate_frames``: scoring a detector on generated frames.
- ``tools``: the console scripts ``yolox_train``, ``yolox_make_dataset``,
  ``yolox_train_demo`` and ``yolox_export``.
"""
