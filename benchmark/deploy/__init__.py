"""Deployment: export of a trained policy to a self-contained bundle (ONNX and TorchScript), the
`Robot` interface with its safety checks and runner, the network link to an arm server, and the
evaluation session of a bundle on an arm (real, remote or the simulated stand-in)."""
