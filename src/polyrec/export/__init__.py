"""A trained run's next-item recommender as files that need no PyTorch to answer.

``polyrec export --run R --out DIR`` (or :func:`polyrec.export.writer.export_run`) writes the
user encoder as an ONNX graph, the catalogue's item vectors, the priors' maps and the known
users' histories; ``polyrec.load(DIR)`` reads them back with onnxruntime, numpy and scipy
only (:class:`polyrec.export.reader.ExportedRecommender`) and recommends as the run does.
``--int8`` stores the graph's matrix weights in 8 bits (onnxruntime's dynamic quantization).
"""
