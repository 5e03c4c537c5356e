"""cotrain-robot: the part of cotrain-bench that runs at the robot, with numpy and pyzmq alone.

`geometry` (quaternions, `rot6d`, `to_policy_frame`), `robot` (the `Robot` interface a driver implements,
and its errors), `safety` (the limits checked on every action), `runner` (`PolicyRunner`: a bundle
driving a robot at the control rate), `protocol`, `server` (`ArmServer`, on the robot computer) and
`client` (`RemoteRobot`, on the policy computer), `bundle` (loading an exported policy; needs
onnxruntime), `session` and `episodes` (`arm_eval`: an evaluation session writing its summary and its
episodes in the suite's dataset layout; needs h5py) and `cli` (the `cotrain-robot` command). Nothing
here imports the suite, torch or a simulator.
"""
