"""Small real Keras models for the probe's tests, each a builder for conftest's `save_model`.

The flagged cases of the static rules (deep sigmoid stack, tiny initializer, SimpleRNN over a
long sequence, exploding initializer), healthy stacks the probe must not flag, and one
flagged case and one near miss for each probe rule (GL901-GL905). Widths and depths are small
so that a forward and backward pass takes milliseconds.
"""

from __future__ import annotations

from conftest import keras2, keras3


def mlp(depth: int, width: int = 64, activation: str = "relu", initializer="glorot_uniform",
        bias_initializer="zeros", inputs: int | None = None, head: str = "softmax",
        name: str = "mlp"):
    keras = keras3()
    layers = [keras.Input((inputs or width,))]
    layers += [keras.layers.Dense(width, activation=activation, kernel_initializer=initializer,
                                  bias_initializer=bias_initializer, name=f"hidden_{i}")
               for i in range(1, depth + 1)]
    layers.append(keras.layers.Dense(10, activation=head, name="head"))
    return keras.Sequential(layers, name=name)


def deep_sigmoid():
    """10 sigmoid layers with Glorot init: GL101 (error); measured first/last about 1e-6."""
    return mlp(10, activation="sigmoid", name="deep_sigmoid")


def shallow_sigmoid():
    """3 sigmoid layers: measured first/last about 0.04, a near miss for GL901."""
    return mlp(3, activation="sigmoid", name="shallow_sigmoid")


def tiny_initializer():
    """RandomNormal(stddev=0.01) at fan-in 128: GL201 (error); the signal collapses."""
    keras = keras3()
    return mlp(10, width=128, initializer=keras.initializers.RandomNormal(stddev=0.01),
               name="tiny_initializer")


def exploding_initializer():
    """RandomNormal(stddev=0.5) at fan-in 64: GL203 (error); the signal grows to about 1e5."""
    keras = keras3()
    return mlp(10, initializer=keras.initializers.RandomNormal(stddev=0.5),
               name="exploding_initializer")


def relu_he(depth: int = 20):
    """A plain ReLU/He stack: GL301 and GL302 warn, the gradient flow measures healthy."""
    return mlp(depth, initializer="he_normal", name="relu_he")


def prenorm_residual(blocks: int = 12, width: int = 64):
    """Pre-norm residual blocks (LayerNormalization, Dense, Dense, Add), as in transformers."""
    keras = keras3()
    inputs = keras.Input((width,))
    x = inputs
    for i in range(blocks):
        h = keras.layers.LayerNormalization(name=f"norm_{i}")(x)
        h = keras.layers.Dense(width, activation="relu", kernel_initializer="he_normal",
                               name=f"up_{i}")(h)
        h = keras.layers.Dense(width, name=f"down_{i}")(h)
        x = keras.layers.Add(name=f"add_{i}")([x, h])
    x = keras.layers.LayerNormalization(name="final_norm")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs, name="prenorm_residual")


def simple_rnn(steps: int = 60, name: str = "simple_rnn"):
    """An untrained SimpleRNN: over 60 steps GL401 (error) and a measured input-gradient
    ratio far below 1e-3; over 20 steps about 5e-4 (so near the threshold that the seed of
    the initial weights decides); over 8 steps about 0.06. Seeded, so every build is the same."""
    keras = keras3()
    keras.utils.set_random_seed(5)
    return keras.Sequential([keras.Input((steps, 16)), keras.layers.SimpleRNN(32, name="rnn"),
                             keras.layers.Dense(1, name="score")], name=name)


def lstm(steps: int = 50):
    """An untrained LSTM over 50 steps: its gradient through time decays too (gated: info)."""
    keras = keras3()
    return keras.Sequential([keras.Input((steps, 16)), keras.layers.LSTM(32, name="lstm"),
                             keras.layers.Dense(1, name="score")], name="lstm")


def saturated_tanh():
    """tanh layers with RandomNormal(stddev=2.0) at fan-in 64: pre-activations with standard
    deviation 16, three quarters beyond ±5."""
    keras = keras3()
    return mlp(3, activation="tanh", initializer=keras.initializers.RandomNormal(stddev=2.0),
               name="saturated_tanh")


def moderate_tanh():
    """tanh layers with RandomNormal(stddev=0.3): about 4% beyond ±5, a near miss."""
    keras = keras3()
    return mlp(3, activation="tanh", initializer=keras.initializers.RandomNormal(stddev=0.3),
               name="moderate_tanh")


def dead_relu():
    """ReLU layers whose biases start at -5: every unit is dead."""
    keras = keras3()
    return mlp(3, initializer="he_normal", bias_initializer=keras.initializers.Constant(-5.0),
               name="dead_relu")


def shallow_relu():
    """Three ReLU/He layers with zero biases: few dead units, a near miss."""
    return mlp(3, initializer="he_normal", name="shallow_relu")


def nan_weights():
    """A healthy stack with one NaN written into a stored kernel."""
    import numpy as np

    model = mlp(3, initializer="he_normal", name="nan_weights")
    kernel, bias = model.get_layer("hidden_2").get_weights()
    kernel[0, 0] = np.nan
    model.get_layer("hidden_2").set_weights([kernel, bias])
    return model


def batchnorm_mlp():
    """Dense, BatchNormalization, ReLU: for the live-model test (moving statistics)."""
    keras = keras3()
    inputs = keras.Input((32,))
    x = keras.layers.Dense(32, name="dense")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Activation("relu", name="relu")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs, name="batchnorm_mlp")


def lambda_model():
    """A Lambda layer: the probe refuses to load it without --unsafe-load."""
    keras = keras3()
    inputs = keras.Input((16,))
    x = keras.layers.Dense(16, activation="sigmoid", name="dense")(inputs)
    x = keras.layers.Lambda(lambda t: t * 2.0, name="double")(x)
    outputs = keras.layers.Dense(1, name="head")(x)
    return keras.Model(inputs, outputs, name="lambda_model")


def custom_layer_model():
    """Three ScaledDense layers (from tests/probe_custom_layers.py) that each multiply by 1e-3:
    no static rule can see the collapse, the probe can."""
    keras = keras3()
    from probe_custom_layers import ScaledDense

    inputs = keras.Input((32,))
    x = inputs
    for i in range(3):
        x = ScaledDense(32, factor=1e-3, name=f"scaled_{i}")(x)
    outputs = keras.layers.Dense(1, name="head")(x)
    return keras.Model(inputs, outputs, name="custom_layer_model")


def tf_keras_recurrent():
    """Written by tf-keras (Keras 2): a SimpleRNN over 60 steps, for .keras and .h5 files."""
    tf_keras = keras2()
    model = tf_keras.Sequential([tf_keras.Input((60, 8)),
                                 tf_keras.layers.SimpleRNN(16, name="rnn"),
                                 tf_keras.layers.Dense(1, name="score")])
    model.compile(optimizer="sgd", loss="mse")
    return model


def tf_keras_sigmoid():
    """Written by tf-keras: 8 sigmoid layers and a softmax head."""
    tf_keras = keras2()
    model = tf_keras.Sequential(
        [tf_keras.Input((16,))]
        + [tf_keras.layers.Dense(32, activation="sigmoid") for _ in range(8)]
        + [tf_keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    return model


# -- the probe's own defects (tests/test_probe_defects.py) ----------------------------------

def tanh_batchnorm(depth: int = 20, width: int = 64):
    """Dense, BatchNormalization, tanh, 20 times: in training mode the measured first/last
    ratio depends on the batch (759 at batch 4, 8.8 at 32 for this seeded build), so batch 4
    raises a false GL902. Seeded, so every build is the same."""
    keras = keras3()
    keras.utils.set_random_seed(1)
    inputs = keras.Input((width,))
    x = inputs
    for i in range(depth):
        x = keras.layers.Dense(width, name=f"dense_{i}")(x)
        x = keras.layers.BatchNormalization(name=f"bn_{i}")(x)
        x = keras.layers.Activation("tanh", name=f"tanh_{i}")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs, name="tanh_batchnorm")


def frozen_sigmoid():
    """A BatchNormalization and 10 sigmoid layers (GL101), every layer frozen
    (trainable=False): the probe has no gradient to measure, and the frozen BatchNorm uses its
    moving statistics, so the batch need not follow `batch-size`."""
    keras = keras3()
    layers = [keras.Input((16,)), keras.layers.BatchNormalization(name="bn", trainable=False)]
    layers += [keras.layers.Dense(16, activation="sigmoid", name=f"hidden_{i}", trainable=False)
               for i in range(1, 11)]
    layers.append(keras.layers.Dense(10, activation="softmax", name="head", trainable=False))
    return keras.Sequential(layers, name="frozen_sigmoid")


def constant_offset():
    """A zero kernel and a bias of 3: the layer's output is 3 everywhere, so its RMS is 3 and
    its standard deviation 0."""
    keras = keras3()
    return keras.Sequential([
        keras.Input((8,)),
        keras.layers.Dense(4, kernel_initializer="zeros",
                           bias_initializer=keras.initializers.Constant(3.0), name="offset"),
        keras.layers.Dense(2, name="head")], name="constant_offset")


def dict_inputs():
    """A Functional model on a dict of inputs, as keras-hub backbones take them: token ids,
    segment ids and a padding mask, each into its own Embedding."""
    keras = keras3()
    names = {"token_ids": 100, "segment_ids": 2, "padding_mask": 2}
    inputs = {name: keras.Input((None,), dtype="int32", name=name) for name in names}
    embedded = [keras.layers.Embedding(size, 16, name=f"{name}_embedding")(inputs[name])
                for name, size in names.items()]
    x = keras.layers.Add(name="sum")(embedded)
    x = keras.layers.Dense(16, activation="relu", name="feed_forward")(x)
    outputs = keras.layers.Dense(4, name="head")(x)
    return keras.Model(inputs, outputs, name="dict_inputs")


def tf_keras_embedding():
    """Written by tf-keras: an Embedding after an InputLayer of the default dtype, float32."""
    tf_keras = keras2()
    return tf_keras.Sequential([tf_keras.Input((10,)), tf_keras.layers.Embedding(50, 8),
                                tf_keras.layers.Flatten(),
                                tf_keras.layers.Dense(3, activation="softmax")])


def tf_keras_dense():
    """Written by tf-keras: `Dense(8, input_dim=4)` first, the way Keras 2 Sequential models
    were written (tests derive the Keras 2.2 file without an InputLayer from it)."""
    tf_keras = keras2()
    model = tf_keras.Sequential([tf_keras.layers.Dense(8, input_dim=4, activation="relu"),
                                 tf_keras.layers.Dense(8, activation="relu"),
                                 tf_keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    return model


def tf_keras_batchnorm():
    """Written by tf-keras: Dense, BatchNormalization (the tf-keras class), ReLU."""
    tf_keras = keras2()
    return tf_keras.Sequential([tf_keras.Input((16,)), tf_keras.layers.Dense(16),
                                tf_keras.layers.BatchNormalization(),
                                tf_keras.layers.Activation("relu"),
                                tf_keras.layers.Dense(3, activation="softmax")])


def keras_hub_bert():
    """A keras-hub BERT backbone from a tiny config (2 layers, width 16, sequences of at most
    16 tokens, 2 segments): dict inputs `token_ids`, `segment_ids`, `padding_mask`."""
    import keras_hub

    keras3().utils.set_random_seed(3)
    return keras_hub.models.BertBackbone(vocabulary_size=100, num_layers=2, num_heads=2,
                                         hidden_dim=16, intermediate_dim=32,
                                         max_sequence_length=16, num_segments=2)


def masked_embedding_lstm():
    """An Embedding with mask_zero feeding an LSTM: the probe's pass runs boolean mask ops,
    at whose first TensorFlow logs an ERROR-level notice on CPUs without AVX-512."""
    keras = keras3()
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12,), dtype="int32")
    hidden = keras.layers.Embedding(50, 8, mask_zero=True)(inputs)
    hidden = keras.layers.LSTM(8)(hidden)
    return keras.Model(inputs, keras.layers.Dense(3)(hidden))
