#!/usr/bin/env python3
"""Writes the model that tandem-bench-serving-model published as an ONNX graph with the same
weights (its weights/ folder), for the ONNX Runtime peer of bench/serving.

  export_onnx.py OUT_DIR      # reads OUT_DIR/weights/, writes OUT_DIR/model.onnx

Covers the layers of the benchmarked models: conv2d, max_pool, relu, sigmoid, tanh, fc, concat,
embedding (multi-hot fields with one id per field, sum pooling) and the costs' link functions
(softmax_cross_entropy -> Softmax, binary_cross_entropy -> Sigmoid). Tandem's fc weights are
[in, out] (Gemm without transB); conv2d's are [filters, channels, kh, kw] as in ONNX.
"""
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def main():
    out = sys.argv[1]
    index = json.load(open(os.path.join(out, "weights", "index.json")))
    model = index["model"]
    weights = {}
    for p in index["params"]:
        a = np.fromfile(os.path.join(out, "weights", p["name"] + ".bin"), dtype=np.float32)
        weights[p["name"]] = a.reshape(p["shape"])
    nodes, inits, inputs = [], [], []
    shapes = {}  # blob -> per-example shape
    for i in model["inputs"]:
        src = i.get("source", "features")
        if src == "features":
            inputs.append(helper.make_tensor_value_info(i["name"], TensorProto.FLOAT, ["N"] + i["shape"]))
            shapes[i["name"]] = list(i["shape"])
        elif src == "fields":
            inputs.append(helper.make_tensor_value_info(i["name"], TensorProto.INT64, ["N", i["shape"][0]]))
            shapes[i["name"]] = list(i["shape"])

    def init(name, array):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def pair(v):
        return list(v) if isinstance(v, list) else [v, v]

    output = None
    for layer in model["layers"]:
        t, name = layer["type"], layer["name"]
        ins = layer.get("inputs") or [layer["input"]]
        x = ins[0]
        if t == "conv2d":
            pad, stride = pair(layer.get("padding", 0)), pair(layer.get("stride", 1))
            args = [x, init(name + ".weights", weights[name + ".weights"])]
            if name + ".bias" in weights:
                args.append(init(name + ".bias", weights[name + ".bias"]))
            nodes.append(helper.make_node("Conv", args, [name], pads=pad + pad, strides=stride))
            c, h, w = shapes[x]
            k = weights[name + ".weights"].shape
            shapes[name] = [k[0], (h + 2 * pad[0] - k[2]) // stride[0] + 1, (w + 2 * pad[1] - k[3]) // stride[1] + 1]
        elif t == "max_pool":
            size = pair(layer.get("poolSize", 2))
            stride = pair(layer.get("stride", 0))
            stride = [s if s > 0 else z for s, z in zip(stride, size)]
            pad = pair(layer.get("padding", 0))
            nodes.append(helper.make_node("MaxPool", [x], [name], kernel_shape=size, strides=stride, pads=pad + pad))
            c, h, w = shapes[x]
            shapes[name] = [c, (h + 2 * pad[0] - size[0]) // stride[0] + 1, (w + 2 * pad[1] - size[1]) // stride[1] + 1]
        elif t in ("relu", "sigmoid", "tanh"):
            nodes.append(helper.make_node({"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}[t], [x], [name]))
            shapes[name] = shapes[x]
        elif t == "fc":
            if len(shapes[x]) > 1:
                nodes.append(helper.make_node("Flatten", [x], [name + ".flat"], axis=1))
                x = name + ".flat"
            args = [x, init(name + ".weights", weights[name + ".weights"])]
            if name + ".bias" in weights:
                args.append(init(name + ".bias", weights[name + ".bias"]))
            nodes.append(helper.make_node("Gemm", args, [name]))
            shapes[name] = [weights[name + ".weights"].shape[1]]
        elif t == "concat":
            nodes.append(helper.make_node("Concat", ins, [name], axis=1))
            shapes[name] = [sum(shapes[i][0] for i in ins)]
        elif t == "embedding":
            table = weights[name + ".table"]
            vocab = init(name + ".vocab", np.array(table.shape[0], dtype=np.int64))
            nodes.append(helper.make_node("Mod", [x, vocab], [name + ".rows"]))
            nodes.append(helper.make_node("Gather", [init(name + ".table", table), name + ".rows"], [name + ".gathered"], axis=0))
            fields = shapes[x][0]
            shape = init(name + ".shape", np.array([-1, fields * table.shape[1]], dtype=np.int64))
            nodes.append(helper.make_node("Reshape", [name + ".gathered", shape], [name]))
            shapes[name] = [fields * table.shape[1]]
        elif t == "softmax_cross_entropy":
            nodes.append(helper.make_node("Softmax", [x], ["out"], axis=1))
            output = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", shapes[x][0]])
        elif t == "binary_cross_entropy":
            nodes.append(helper.make_node("Sigmoid", [x], ["out"]))
            output = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 1])
        else:
            sys.exit(f"export_onnx.py: layer type {t} is not supported")
    graph = helper.make_graph(nodes, "tandem", inputs, [output], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, os.path.join(out, "model.onnx"))
    print(f"wrote {os.path.join(out, 'model.onnx')}")


if __name__ == "__main__":
    main()
