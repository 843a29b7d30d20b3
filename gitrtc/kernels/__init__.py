"""Running notebooks' code on the owner's machine: shared and private kernels.

`service.KernelService` answers the `kernel` requests of the request channel
(`gitrtc.requests`); `runner.KernelRunner` queues a kernel's cells; `process` talks to the
kernel through jupyter_client; `outputs` writes what a kernel emits.
"""
