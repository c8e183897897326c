"""LR-ASD, the light-weight audio-visual active speaker detector (Liao et al., CVPR 2023 / IJCV 2025; 0.84 M
parameters), written from the paper and its published code so that the released state dicts load key for key.

Inputs per face clip: T greyscale 112x112 face crops at 25 fps and the 4T matching 13-coefficient MFCC frames at
100 Hz. Each encoder turns its input into T frames of 128 features; the two are joined (256), weighted by a learned
sigmoid attention, read by a forward and a backward GRU (64 each), weighted again, and a linear layer gives two
logits per frame. The speaking score is the second logit (as the authors' demo reads it): > 0 means speaking.

The spatial (1 x k x k) and temporal (k x 1 x 1) 3-D convolutions of the published visual encoder run here as 2-D
convolutions over frames and over time, which computes the same thing; the weights keep the published shapes.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

VISUAL_MEAN, VISUAL_STD = 0.4161, 0.1688  # the published normalisation of grey values in 0..1
FEATURES = 128  # per encoder, per frame
BN = dict(momentum=0.01, eps=0.001)  # every batch norm of the published network
MFCC_PER_FRAME = 4  # 100 Hz MFCC frames per 25 fps video frame


class VisualBlock(nn.Module):
    """Two spatial convolutions (the first may halve the frame), then two temporal ones; batch norm (inference
    statistics) and ReLU after each. `x` is (B*T, C, H, W): the frames of B clips of T frames."""

    def __init__(self, in_channels: int, out_channels: int, kernel_1: int, kernel_2: int, down: bool = False):
        super().__init__()
        half = out_channels // 2
        self.s_1 = nn.Conv3d(in_channels, half, (1, kernel_1, kernel_1), stride=(1, 2, 2) if down else 1,
                             padding=(0, kernel_1 // 2, kernel_1 // 2), bias=False)
        self.s_norm_1 = nn.BatchNorm3d(half, **BN)
        self.s_2 = nn.Conv3d(half, out_channels, (1, kernel_2, kernel_2), padding=(0, kernel_2 // 2, kernel_2 // 2),
                             bias=False)
        self.s_norm_2 = nn.BatchNorm3d(out_channels, **BN)
        self.t_1 = nn.Conv3d(out_channels, out_channels, (kernel_1, 1, 1), padding=(kernel_1 // 2, 0, 0), bias=False)
        self.t_norm_1 = nn.BatchNorm3d(out_channels, **BN)
        self.t_2 = nn.Conv3d(out_channels, out_channels, (kernel_2, 1, 1), padding=(kernel_2 // 2, 0, 0), bias=False)
        self.t_norm_2 = nn.BatchNorm3d(out_channels, **BN)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        x = _conv_bn_relu(x, self.s_1, self.s_norm_1, lambda w: w[:, :, 0], self.s_1.stride[1:], self.s_1.padding[1:])
        x = _conv_bn_relu(x, self.s_2, self.s_norm_2, lambda w: w[:, :, 0], 1, self.s_2.padding[1:])
        clips_frames, channels, height, width = x.shape
        x = x.view(clips_frames // frames, frames, channels, height * width).transpose(1, 2)  # (B, C, T, H*W)
        x = _conv_bn_relu(x, self.t_1, self.t_norm_1, lambda w: w[..., 0], 1, (self.t_1.padding[0], 0))
        x = _conv_bn_relu(x, self.t_2, self.t_norm_2, lambda w: w[..., 0], 1, (self.t_2.padding[0], 0))
        return x.transpose(1, 2).reshape(clips_frames, channels, height, width)


class AudioBlock(nn.Module):
    """Two convolutions across the MFCC coefficients, then two over time. `x` is (B, C, coefficients, time)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_1: int, kernel_2: int):
        super().__init__()
        half = out_channels // 2
        self.m_1 = nn.Conv2d(in_channels, half, (kernel_1, 1), padding=(kernel_1 // 2, 0), bias=False)
        self.m_norm_1 = nn.BatchNorm2d(half, **BN)
        self.m_2 = nn.Conv2d(half, out_channels, (kernel_2, 1), padding=(kernel_2 // 2, 0), bias=False)
        self.m_norm_2 = nn.BatchNorm2d(out_channels, **BN)
        self.t_1 = nn.Conv2d(out_channels, out_channels, (1, kernel_1), padding=(0, kernel_1 // 2), bias=False)
        self.t_norm_1 = nn.BatchNorm2d(out_channels, **BN)
        self.t_2 = nn.Conv2d(out_channels, out_channels, (1, kernel_2), padding=(0, kernel_2 // 2), bias=False)
        self.t_norm_2 = nn.BatchNorm2d(out_channels, **BN)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, norm in ((self.m_1, self.m_norm_1), (self.m_2, self.m_norm_2), (self.t_1, self.t_norm_1),
                           (self.t_2, self.t_norm_2)):
            x = F.relu(norm(conv(x)))
        return x


class VisualEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.block1 = VisualBlock(1, 32, 5, 3, down=True)
        self.block2 = VisualBlock(32, 64, 5, 3)
        self.block3 = VisualBlock(64, 128, 5, 3)

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        """(B, T, 112, 112) grey values 0..255 -> (B, T, 128)."""
        batch, frames = faces.shape[:2]
        x = ((faces / 255 - VISUAL_MEAN) / VISUAL_STD).flatten(0, 1).unsqueeze(1)
        x = F.max_pool2d(self.block1(x, frames), 3, 2, 1)
        x = F.max_pool2d(self.block2(x, frames), 3, 2, 1)
        return self.block3(x, frames).amax(dim=(2, 3)).view(batch, frames, FEATURES)


class AudioEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.block1 = AudioBlock(1, 32, 5, 3)
        self.block2 = AudioBlock(32, 64, 5, 3)
        self.block3 = AudioBlock(64, 128, 5, 3)

    def forward(self, mfcc: torch.Tensor) -> torch.Tensor:
        """(B, 4T, 13) MFCC frames -> (B, T, 128): two poolings halve the 100 Hz rate to 25 Hz."""
        x = mfcc.unsqueeze(1).transpose(2, 3)
        x = F.max_pool2d(self.block1(x), (1, 3), (1, 2), (0, 1))
        x = F.max_pool2d(self.block2(x), (1, 3), (1, 2), (0, 1))
        return self.block3(x).mean(dim=2).transpose(1, 2)


class Fusion(nn.Module):
    """Joins two (B, T, C) streams and weights every feature by a sigmoid attention computed from all of them."""

    def __init__(self, channels: int):
        super().__init__()
        self.attention = nn.Conv1d(channels, channels, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm1d(channels, **BN)

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        joined = torch.cat((first, second), dim=2).transpose(1, 2)
        return (joined * torch.sigmoid(self.bn(self.attention(joined)))).transpose(1, 2)


class Detector(nn.Module):
    """A forward and a backward GRU over the fused frames, their outputs fused again: (B, T, 256) -> (B, T, 128)."""

    def __init__(self, channels: int = 2 * FEATURES):
        super().__init__()
        self.gru_forward = nn.GRU(channels, channels // 4, batch_first=True)
        self.gru_backward = nn.GRU(channels, channels // 4, batch_first=True)
        self.attention = Fusion(channels // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ahead, _ = self.gru_forward(x)
        behind, _ = self.gru_backward(torch.flip(x, dims=[1]))
        return self.attention(ahead, torch.flip(behind, dims=[1]))


class ASDModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.visualEncoder = VisualEncoder()  # the published attribute names, so the state dicts load as they are
        self.audioEncoder = AudioEncoder()
        self.fusion = Fusion(2 * FEATURES)
        self.detector = Detector(2 * FEATURES)


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.FC = nn.Linear(FEATURES, 2)


class LRASD(nn.Module):
    """The released state dict's layout: `model.*` (encoders, fusion, detector), `lossAV.FC` (the audio-visual
    head that scores) and `lossV.FC` (a visual-only head used in training, kept so the file loads strictly)."""

    def __init__(self):
        super().__init__()
        self.model = ASDModel()
        self.lossAV = Head()
        self.lossV = Head()

    def encode_faces(self, faces: torch.Tensor) -> torch.Tensor:
        return self.model.visualEncoder(faces)

    def encode_audio(self, mfcc: torch.Tensor) -> torch.Tensor:
        return self.model.audioEncoder(mfcc)

    def score(self, audio: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
        """(B, T, 128) audio and face embeddings of the same frames -> (B, T) speaking scores (> 0: speaking)."""
        fused = self.model.detector(self.model.fusion(audio, faces))
        return self.lossAV.FC(fused)[..., 1]

    def forward(self, mfcc: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
        return self.score(self.encode_audio(mfcc), self.encode_faces(faces))


def _conv_bn_relu(x, conv, norm, as_2d, stride, padding) -> torch.Tensor:
    """Convolution, batch norm with its inference statistics, ReLU: the norm folded into the convolution's weight
    and bias, which lets oneDNN run the three as one (1.5-2.5x on the CPU in channels-last layout)."""
    weight, bias = _folded(conv, norm)
    return F.relu(F.conv2d(x, as_2d(weight), bias, stride=stride, padding=padding))


def _folded(conv, norm) -> tuple[torch.Tensor, torch.Tensor]:
    """The weight and bias of one convolution that computes `norm(conv(x))` with the norm's inference statistics."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    return conv.weight * scale.view(-1, *[1] * (conv.weight.dim() - 1)), norm.bias - norm.running_mean * scale


ACTIVATIONS = 12  # ReLU outputs in the visual encoder (3 blocks x 4 convolutions): what int8 calibration measures
INPUT_RANGE = (-VISUAL_MEAN / VISUAL_STD, (1 - VISUAL_MEAN) / VISUAL_STD)  # the normalised grey values, known exactly
# Weights in 7 bits (+-63): x86 CPUs without VNNI multiply 8-bit pairs into saturating 16-bit sums, which +-127
# weights can overflow (ONNX Runtime's `reduce_range`); 7-bit ones cannot (2 x 255 x 63 < 32767).
WEIGHT_STEPS = 63


def visual_encoder_onnx(network: LRASD, report_maxima: bool = False) -> bytes:
    """`network.encode_faces` as an ONNX model (input `faces` (B, T, 112, 112) grey values 0..255, output
    `embeddings` (B, T, 128)): the same 2-D convolutions over frames and over time with the norms folded in. ONNX
    Runtime runs it 2.7x as fast as torch on the CPU, with the same values (BENCHMARKS.md). `report_maxima`: also
    output `maxima` (ACTIVATIONS,), each ReLU output's largest value over the batch, for int8 calibration."""
    from onnx import TensorProto, helper

    graph = _GraphBuilder()
    batch_frames = graph.node("Shape", ["faces"], end=2)
    x = graph.node("Reshape", ["faces", graph.constant(np.array([-1, 1, 112, 112], np.int64))])
    x = graph.node("Div", [graph.node("Sub", [x, graph.constant(np.float32(VISUAL_MEAN * 255))]),
                           graph.constant(np.float32(VISUAL_STD * 255))])
    maxima = []

    def conv_relu(x: str, conv, norm, kernel, stride, pads) -> str:
        weight, bias = _folded_numpy(conv, norm, kernel)
        y = graph.node("Relu", [graph.node("Conv", [x, graph.constant(weight), graph.constant(bias)],
                                           kernel_shape=list(kernel), strides=[stride, stride], pads=list(pads) * 2)])
        if report_maxima:
            maxima.append(graph.node("Reshape", [graph.node("ReduceMax", [y], keepdims=0),
                                                 graph.constant(np.array([1], np.int64))]))
        return y

    for index, (block, side, kernels, stride) in enumerate(_blocks(network)):
        x = conv_relu(x, block.s_1, block.s_norm_1, (kernels[0],) * 2, stride, (kernels[0] // 2,) * 2)
        x = conv_relu(x, block.s_2, block.s_norm_2, (kernels[1],) * 2, 1, (kernels[1] // 2,) * 2)
        channels = block.s_2.out_channels
        # (B*T, C, H, W) -> (B, C, T, H*W): the temporal convolutions run down T
        by_clip = graph.node("Concat", [batch_frames, graph.constant(np.array([channels, side * side], np.int64))],
                             axis=0)
        x = graph.node("Transpose", [graph.node("Reshape", [x, by_clip])], perm=[0, 2, 1, 3])
        x = conv_relu(x, block.t_1, block.t_norm_1, (kernels[0], 1), 1, (kernels[0] // 2, 0))
        x = conv_relu(x, block.t_2, block.t_norm_2, (kernels[1], 1), 1, (kernels[1] // 2, 0))
        x = graph.node("Reshape", [graph.node("Transpose", [x], perm=[0, 2, 1, 3]),
                                   graph.constant(np.array([-1, channels, side, side], np.int64))])
        if index < 2:
            x = graph.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    features = graph.node("ReduceMax", [x, graph.constant(np.array([2, 3], np.int64))], keepdims=0)
    outputs = [graph.embeddings(features, batch_frames)]
    if report_maxima:
        graph.nodes.append(helper.make_node("Concat", maxima, ["maxima"], axis=0))
        outputs.append(helper.make_tensor_value_info("maxima", TensorProto.FLOAT, [ACTIVATIONS]))
    return graph.model(outputs)


def visual_encoder_int8_onnx(network: LRASD, maxima: list[float]) -> bytes:
    """`visual_encoder_onnx` in integers, given the largest value of each of its ACTIVATIONS ReLU outputs on
    typical faces (`calibrate_int8`): activations in 8 bits per tensor, weights in 7 bits per output channel, biases
    in 32 bits, in ONNX Runtime's channels-last integer operators (its com.microsoft QLinearConv and NhwcMaxPool),
    so that the frames, whose temporal convolutions read (B, T, H*W, C), change layout by reshaping alone. A
    convolution's ReLU is its output's zero point of 0; the last one caps the embeddings at their calibrated
    maximum."""
    if len(maxima) != ACTIVATIONS or not all(m > 0 for m in maxima):
        raise ValueError(f"int8 calibration needs {ACTIVATIONS} positive maxima, got {list(maxima)}")
    graph = _GraphBuilder()
    batch_frames = graph.node("Shape", ["faces"], end=2)
    x = graph.node("Div", [graph.node("Sub", ["faces", graph.constant(np.float32(VISUAL_MEAN * 255))]),
                           graph.constant(np.float32(VISUAL_STD * 255))])
    low, high = INPUT_RANGE
    steps = [(np.float32((high - low) / 255), np.uint8(round(-low * 255 / (high - low))))]  # each tensor's scale, zero
    x = graph.node("QuantizeLinear", [x, graph.constant(steps[0][0]), graph.constant(steps[0][1])])
    x = graph.node("Reshape", [x, graph.constant(np.array([-1, 112, 112, 1], np.int64))])

    def conv_relu(x: str, conv, norm, kernel, stride, pads) -> str:
        weight, bias = _folded_numpy(conv, norm, kernel)
        weight_scale = np.maximum(np.abs(weight).reshape(len(weight), -1).max(axis=1), 1e-12).astype(np.float32)
        weight_scale /= WEIGHT_STEPS
        weight_q = np.clip(np.round(weight / weight_scale.reshape(-1, 1, 1, 1)), -WEIGHT_STEPS, WEIGHT_STEPS)
        input_scale, input_zero = steps[-1]
        bias_q = np.clip(np.round(bias / (weight_scale * input_scale)), -2 ** 31, 2 ** 31 - 1)
        steps.append((np.float32(maxima[len(steps) - 1] / 255), np.uint8(0)))
        inputs = [x, input_scale, input_zero, weight_q.astype(np.int8), weight_scale, np.zeros(len(weight), np.int8),
                  *steps[-1], bias_q.astype(np.int32)]
        return graph.node("QLinearConv", [inputs[0]] + [graph.constant(v) for v in inputs[1:]],
                          domain="com.microsoft", channels_last=1, kernel_shape=list(kernel),
                          strides=[stride, stride], pads=list(pads) * 2)

    for index, (block, side, kernels, stride) in enumerate(_blocks(network)):
        x = conv_relu(x, block.s_1, block.s_norm_1, (kernels[0],) * 2, stride, (kernels[0] // 2,) * 2)
        x = conv_relu(x, block.s_2, block.s_norm_2, (kernels[1],) * 2, 1, (kernels[1] // 2,) * 2)
        channels = block.s_2.out_channels
        by_clip = graph.node("Concat", [batch_frames, graph.constant(np.array([side * side, channels], np.int64))],
                             axis=0)
        x = graph.node("Reshape", [x, by_clip])  # (B*T, H, W, C) -> (B, T, H*W, C)
        x = conv_relu(x, block.t_1, block.t_norm_1, (kernels[0], 1), 1, (kernels[0] // 2, 0))
        x = conv_relu(x, block.t_2, block.t_norm_2, (kernels[1], 1), 1, (kernels[1] // 2, 0))
        x = graph.node("Reshape", [x, graph.constant(np.array([-1, side, side, channels], np.int64))])
        if index < 2:
            x = graph.node("NhwcMaxPool", [x], domain="com.microsoft", kernel_shape=[3, 3], strides=[2, 2],
                           pads=[1, 1, 1, 1])
    features = graph.node("ReduceMax", [x, graph.constant(np.array([1, 2], np.int64))], keepdims=0)
    features = graph.node("DequantizeLinear", [features, *(graph.constant(v) for v in steps[-1])])
    return graph.model([graph.embeddings(features, batch_frames)])


def _blocks(network: LRASD):
    """Per visual block: the block, the side of its frames after its first convolution, its two kernel sizes and
    the first convolution's stride."""
    side = 112
    encoder = network.model.visualEncoder
    for block in (encoder.block1, encoder.block2, encoder.block3):
        stride = block.s_1.stride[1]
        side //= stride
        yield block, side, (block.s_1.kernel_size[1], block.s_2.kernel_size[1]), stride
        if block is not encoder.block3:  # pooled
            side = (side + 1) // 2


def _folded_numpy(conv, norm, kernel) -> tuple[np.ndarray, np.ndarray]:
    """A convolution and its norm as one 2-D convolution's weight (out, in, *kernel) and bias."""
    weight, bias = (t.detach().float().cpu().numpy() for t in _folded(conv, norm))
    return weight.reshape(weight.shape[0], weight.shape[1], *kernel), bias


class _GraphBuilder:
    """Nodes and weights of an ONNX graph under construction."""

    def __init__(self):
        self.weights: list = []
        self.nodes: list = []

    def constant(self, value) -> str:
        from onnx import numpy_helper

        name = f"constant_{len(self.weights)}"
        self.weights.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], domain: str | None = None, **attributes) -> str:
        from onnx import helper

        output = f"{op.lower()}_{len(self.nodes)}"
        self.nodes.append(helper.make_node(op, inputs, [output], domain=domain, **attributes))
        return output

    def embeddings(self, features: str, batch_frames: str):
        """The graph's output `embeddings` (B, T, FEATURES) from (B*T, FEATURES) `features`."""
        from onnx import TensorProto, helper

        shape = self.node("Concat", [batch_frames, self.constant(np.array([FEATURES], np.int64))], axis=0)
        self.nodes.append(helper.make_node("Reshape", [features, shape], ["embeddings"]))
        return helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", "frames", FEATURES])

    def model(self, outputs: list) -> bytes:
        from onnx import TensorProto, helper

        faces = helper.make_tensor_value_info("faces", TensorProto.FLOAT, ["batch", "frames", 112, 112])
        graph = helper.make_graph(self.nodes, "lr_asd_visual_encoder", [faces], outputs, self.weights)
        opsets = [helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)]
        return helper.make_model(graph, opset_imports=opsets).SerializeToString()
