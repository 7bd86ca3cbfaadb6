"""The floor for CI step latency: one GetImage with aiobotocore and nothing else,
as a user's own script would make it. `python -m bench.contenders.one_get_image
ENDPOINT_URL ARN` prints the build's status; exit 0 when AVAILABLE."""

from __future__ import annotations

import asyncio
import sys

from aiobotocore.session import get_session


async def main(endpoint_url: str, arn: str) -> int:
    async with get_session().create_client("imagebuilder", endpoint_url=endpoint_url) as client:
        answer = await client.get_image(imageBuildVersionArn=arn)
    status = answer["image"]["state"]["status"]
    print(status)
    return 0 if status == "AVAILABLE" else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2])))
