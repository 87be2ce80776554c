"""A job with a mistake in its settings: DataGen's count is a string."""

from headwater.core import DataGenSource, StreamEnvironment

env = StreamEnvironment()
source = DataGenSource(lambda i, rng: i, count="ten")  # the line the error report points at
env.from_source(source).print()
env.execute("bad-setting")
