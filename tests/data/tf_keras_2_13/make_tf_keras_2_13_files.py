"""Writes the tf-keras 2.13 `.keras` archives in this folder, and what Keras 2.13 itself
reports about each model (<name>.keras.expected.json), with `keras==2.13.1` and
`tensorflow-cpu==2.13.1` (Python 3.11):  python make_tf_keras_2_13_files.py"""
import json
import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np
import tensorflow as tf
import keras
from keras import layers

tf.keras.utils.set_random_seed(213)


def functional():
    inputs = keras.Input((6, 4), name="series")
    x = layers.LSTM(5, return_sequences=True, name="lstm")(inputs)
    x = layers.Bidirectional(layers.GRU(3), name="bidi")(x)
    shared = layers.Dense(7, activation="tanh", name="shared")
    a = shared(x)
    b = shared(layers.Dense(6, name="side")(x))
    x = layers.Concatenate(name="merge")([a, b])
    encoder = keras.Sequential([keras.Input((14,)),
                                layers.Dense(8, activation="relu", name="enc_dense"),
                                layers.BatchNormalization(name="enc_bn"),
                                layers.Dropout(0.1, name="enc_drop"),
                                layers.Dense(6, activation="sigmoid", name="enc_out")],
                               name="encoder")
    x = encoder(x)
    outputs = layers.Dense(2, activation="softmax", name="out")(x)
    model = keras.Model(inputs, outputs, name="tf_keras_2_13_functional")
    model.compile(keras.optimizers.Adam(learning_rate=0.003), "categorical_crossentropy")
    return model


def sequential():
    model = keras.Sequential([keras.Input((10,)),
                              layers.Dense(9, activation="sigmoid", name="hidden_0"),
                              layers.Dense(9, activation="sigmoid", name="hidden_1"),
                              layers.Dropout(0.2, name="drop"),
                              layers.Dense(9, activation="sigmoid", name="hidden_2"),
                              layers.Dense(1, name="out")], name="tf_keras_2_13_sequential")
    return model


def leaves(model, prefix=""):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from leaves(layer, f"{prefix}{layer.name}/")
        elif not isinstance(layer, layers.InputLayer):
            yield prefix + layer.name, layer


for name, build in (("functional", functional), ("sequential", sequential)):
    model = build()
    path = f"tf_keras_2_13_{name}.keras"
    model.save(path)
    expected = {
        "keras_version": keras.__version__,
        "class": type(model).__name__,
        "params": int(model.count_params()),
        "layers": {
            path_: {"class": type(layer).__name__,
                    "weights": [{"shape": list(w.shape),
                                 "mean": float(np.mean(w.numpy(), dtype=np.float64)),
                                 "std": float(np.std(w.numpy(), dtype=np.float64))}
                                for w in layer.weights]}
            for path_, layer in leaves(model)},
    }
    with open(path + ".expected.json", "w") as handle:
        json.dump(expected, handle, indent=1, sort_keys=True)
        handle.write("\n")
