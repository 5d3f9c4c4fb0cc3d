"""Media follow-ups: every image asked for once, in order, in messages the broker takes."""
from __future__ import annotations

import pytest

from erp_sync.shared import internal_messages
from erp_sync.shared.internal_messages import MEDIA_IMAGES_PER_MESSAGE, MediaDownload, decode_media_request, media_messages

MESSAGE_BYTES = 64 * 1024  # the bound, scaled down with the URLs: the same splits, a hundredth of the bytes


def images(count: int, url_chars: int, sku: str = "SKU-1") -> list[MediaDownload]:
    return [MediaDownload(media_id=n, sku=sku, url=f"https://cdn.example/{n}/" + "x" * url_chars) for n in range(count)]


@pytest.mark.parametrize("downloads", [
    images(2_500, 20),  # a bulk load's: by count
    images(1_000, 1_000),  # URLs an earlier door took, longer than now: by bytes
    images(3, 100 * 1024),  # one larger than a message's bytes goes alone
    images(1_000, 10, sku="Ω" * 100),  # a SKU escaped to six bytes a character
], ids=["count", "bytes", "one-alone", "escaped-sku"])
def test_every_image_is_asked_for_once_in_order_in_messages_within_the_bounds(downloads, monkeypatch):
    monkeypatch.setattr(internal_messages, "MEDIA_MESSAGE_BYTES", MESSAGE_BYTES)

    messages = media_messages(downloads)

    batches = [decode_media_request(message.body).images for message in messages]
    assert [image for batch in batches for image in batch] == downloads
    assert all(len(batch) <= MEDIA_IMAGES_PER_MESSAGE for batch in batches)
    assert all(len(message.body) <= MESSAGE_BYTES or len(batch) == 1 for message, batch in zip(messages, batches, strict=True))
    assert len(messages) > 1
