"""What the machine runs natively: the one place that decides where bf16 is fast (the teacher's
``teacher_precision: auto`` and ``sr-kd upscale --precision auto`` both follow it)."""
from typing import Union

import torch


def cpu_name() -> str:
    """The CPU's model name ('' where /proc/cpuinfo does not say): timings compare only within one."""
    try:
        with open('/proc/cpuinfo') as f:
            return next((line.split(':', 1)[1].strip() for line in f if line.startswith('model name')), '')
    except OSError:
        return ''


def cpu_has_bf16() -> bool:
    """True where the CPU has bf16 instructions (AVX512-BF16 or AMX), so a bf16 forward is faster than fp32;
    elsewhere torch emulates bf16 and it is slower (measured in scripts/bench_kd_step.py and
    scripts/bench_upscale.py)."""
    cpu = torch.cpu
    return bool(getattr(cpu, '_is_avx512_bf16_supported', lambda: False)()
                or getattr(cpu, '_is_amx_tile_supported', lambda: False)())


def bf16_is_native(device: Union[str, torch.device]) -> bool:
    """Whether ``device`` (a torch.device or its name) runs bf16 in hardware."""
    device = torch.device(device)
    if device.type == 'cuda':
        return torch.cuda.is_bf16_supported()
    return device.type == 'cpu' and cpu_has_bf16()
