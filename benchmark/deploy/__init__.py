"""Deployment, the parts that need the simulator or torch: export of a trained policy to a self-contained
bundle (`export`, with what policy.json says in `policy_spec` and the check's observations in
`check_data`) and the simulated stand-in arm (`standin`). What runs at the robot (bundle loading, the
`Robot` interface, safety, runner, arm server and client, evaluation session) is the `cotrain_robot`
package (`robot/`)."""
