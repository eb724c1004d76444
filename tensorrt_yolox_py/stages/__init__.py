"""Pipeline stages: preprocess (letterbox) and postprocess (decode + NMS)."""
