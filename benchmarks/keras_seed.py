"""The seed article's two Keras programs (DRSN and ResNet on noisy MNIST), ported to Keras 3.

The article's programs were written for Keras 2.2 on TensorFlow 1 (``/work/shared/seed``); this
is the same network, loss, optimiser and training call in Keras 3, which runs them on PyTorch
here (``KERAS_BACKEND=torch``, set before Keras is first imported). It is the reference that
``benchmarks/speed.py`` times ``faultdiag``'s demo loop against. Line for line:

* input ``(28, 28, 1)`` (Keras' default ``channels_last``); ``pixels / 255 + 0.5 * U[0, 1)``;
  labels one-hot (``to_categorical``);
* ``Conv2D(8, 3, padding="same")`` -> one residual (shrinkage) block of 8 channels with stride 2
  -> ``BatchNormalization`` -> ReLU -> ``GlobalAveragePooling2D`` -> ``Dense(10, softmax)``;
  every convolution and dense kernel ``he_normal`` with ``l2(1e-4)``, except the threshold
  branch's second (sigmoid) dense layer, which the article leaves at Keras' default initialiser;
* block: BN -> ReLU -> Conv(3, stride 2) -> BN -> ReLU -> Conv(3); DRSN only: ``a = GAP(|x|)``,
  Dense(8) -> BN -> ReLU -> Dense(8, sigmoid) = alpha, ``tau = a * alpha``,
  ``y = sign(x) * max(|x| - tau, 0)``; identity ``AveragePooling2D(1, strides 2)``, zero-padded on
  channels when they grow (not the case here: 8 -> 8); output = residual + identity;
* ``compile(loss="categorical_crossentropy", optimizer=Adam(), metrics=["accuracy"])`` and
  ``fit(batch_size=100, epochs=5, validation_data=(x_test, y_test))``, then ``evaluate``.

Two things cannot carry over: ``K.set_learning_phase(1)`` does not exist in Keras 3 (the
article's evaluation hence normalised each batch by its own statistics; here ``evaluate`` uses
the moving averages, as Keras 3 always does), and TensorFlow 1's kernels are not those of
PyTorch. The square brackets that the article lost in capture (``multiply([abs_mean, scales])``
and the like) are restored as the DRSN authors' published code has them.

    python -m benchmarks.keras_seed --model drsn [--epochs 5] [--limit N] [--data data/mnist]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def import_keras():
    """Keras 3 on the PyTorch backend, or ``None`` when Keras is not installed or runs on another backend."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError:
        return None
    return keras if keras.backend.backend() == "torch" and int(keras.__version__.split(".")[0]) >= 3 else None


def _conv(keras, channels: int, strides: int = 1):
    return keras.layers.Conv2D(channels, 3, strides=(strides, strides), padding="same", kernel_initializer="he_normal",
                               kernel_regularizer=keras.regularizers.l2(1e-4))


def residual_block(keras, incoming, nb_blocks: int, out_channels: int, downsample: bool = False,
                   downsample_strides: int = 2, shrinkage: bool = True):
    """The article's ``residual_shrinkage_block`` (``shrinkage=True``) and ``residual_block``."""
    from keras import layers, ops

    residual = incoming
    in_channels = incoming.shape[-1]
    for _ in range(nb_blocks):
        identity = residual
        if not downsample:
            downsample_strides = 1
        residual = layers.BatchNormalization()(residual)
        residual = layers.Activation("relu")(residual)
        residual = _conv(keras, out_channels, downsample_strides)(residual)
        residual = layers.BatchNormalization()(residual)
        residual = layers.Activation("relu")(residual)
        residual = _conv(keras, out_channels)(residual)
        if shrinkage:
            residual_abs = layers.Lambda(ops.abs)(residual)
            abs_mean = layers.GlobalAveragePooling2D()(residual_abs)
            scales = layers.Dense(out_channels, activation=None, kernel_initializer="he_normal",
                                  kernel_regularizer=keras.regularizers.l2(1e-4))(abs_mean)
            scales = layers.BatchNormalization()(scales)
            scales = layers.Activation("relu")(scales)
            scales = layers.Dense(out_channels, activation="sigmoid", kernel_regularizer=keras.regularizers.l2(1e-4))(scales)
            scales = layers.Lambda(lambda s: ops.expand_dims(ops.expand_dims(s, 1), 1))(scales)
            thres = layers.multiply([abs_mean, scales])  # (N, C) is expanded to (N, 1, 1, C), as in Keras 2
            sub = layers.subtract([residual_abs, thres])
            zeros = layers.subtract([sub, sub])
            n_sub = layers.maximum([sub, zeros])
            residual = layers.multiply([layers.Lambda(ops.sign)(residual), n_sub])
        if downsample_strides > 1:
            identity = layers.AveragePooling2D(pool_size=(1, 1), strides=(2, 2))(identity)
        if in_channels != out_channels:
            pad = (out_channels - in_channels) // 2
            identity = layers.Lambda(lambda t: ops.pad(t, ((0, 0), (0, 0), (0, 0), (pad, pad))))(identity)
        residual = layers.add([residual, identity])
    return residual


def build_model(keras, shrinkage: bool = True):
    """The article's whole network, compiled as the article compiles it."""
    inputs = keras.Input(shape=(28, 28, 1))
    net = _conv(keras, 8)(inputs)
    net = residual_block(keras, net, 1, 8, downsample=True, shrinkage=shrinkage)
    net = keras.layers.BatchNormalization()(net)
    net = keras.layers.Activation("relu")(net)
    net = keras.layers.GlobalAveragePooling2D()(net)
    outputs = keras.layers.Dense(10, activation="softmax", kernel_initializer="he_normal",
                                 kernel_regularizer=keras.regularizers.l2(1e-4))(net)
    model = keras.Model(inputs=inputs, outputs=outputs)
    model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.Adam(), metrics=["accuracy"])
    return model


def noisy(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``(N, 28, 28)`` uint8 -> ``(N, 28, 28, 1)`` float32 ``pixels / 255 + 0.5 * U[0, 1)``, as the article."""
    x = images.reshape(-1, 28, 28, 1).astype("float32") / 255.0
    return (x + 0.5 * rng.random(x.shape)).astype("float32")


def main(argv: list[str] | None = None) -> dict:
    """Run the article's program end to end on the MNIST files in ``--data``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=("drsn", "resnet"), default="drsn")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--limit", type=int, help="first N images of each split (default: all)")
    p.add_argument("--data", default="data/mnist")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="PyTorch threads (default: PyTorch's)")
    args = p.parse_args(argv)
    keras = import_keras()
    if keras is None:
        raise SystemExit("Keras 3 with the PyTorch backend is needed: pip install -e '.[bench]'")
    import torch

    from faultdiag.data.mnist import load_mnist

    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_mnist(args.data)
    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    n_tr, n_te = (args.limit or len(data.train_labels)), (args.limit or len(data.test_labels))
    x_train, x_test = noisy(data.train_images[:n_tr], rng), noisy(data.test_images[:n_te], rng)
    y_train = keras.utils.to_categorical(data.train_labels[:n_tr], 10)
    y_test = keras.utils.to_categorical(data.test_labels[:n_te], 10)
    model = build_model(keras, shrinkage=args.model == "drsn")
    t0 = time.perf_counter()
    model.fit(x_train, y_train, batch_size=100, epochs=args.epochs, verbose=2, validation_data=(x_test, y_test))
    train_s = time.perf_counter() - t0
    train = model.evaluate(x_train, y_train, batch_size=100, verbose=0)
    test = model.evaluate(x_test, y_test, batch_size=100, verbose=0)
    print(f"Train loss: {train[0]:.4f}\nTrain accuracy: {train[1]:.4f}\nTest loss: {test[0]:.4f}\n"
          f"Test accuracy: {test[1]:.4f}\n({train_s:.0f} s of training)")
    return {"train": train, "test": test, "train_s": train_s}


if __name__ == "__main__":
    main()
