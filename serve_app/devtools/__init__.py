"""Development and test tooling, never needed to serve a request: synthetic clips whose frames encode
their index (`synthetic`), the loopback-only network guard of local stacks (`netguard`), the tiny
random-weight Qwen3-VL model for CPU runs (`tiny_model`), the CPU install fix-ups (`cpu_profile`) and the
readback of what vLLM's Qwen3-VL processor builds from a chunk (`markers`: prompt markers and pixels). The
video core must not depend on it; import from the modules.
"""
