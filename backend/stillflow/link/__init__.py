"""The link between client and backend: the wire protocol, the client, CURVE keys and the local launcher.

Torch-free (numpy, msgpack, pyzmq only) and bundled whole into the Blender add-on; the service
(``stillflow.service``) is the other end of the same protocol.
"""
