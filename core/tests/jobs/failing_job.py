"""A job whose map fails on the third record (a ZeroDivisionError in user code)."""

from headwater.core import StreamEnvironment


def divide(x: int) -> int:
    return 10 // (x - 2)  # the failing line the error report points at


env = StreamEnvironment()
env.from_collection([0, 1, 2, 3]).map(divide, name="divide").print()
env.execute("failing")
