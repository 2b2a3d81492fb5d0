"""The project's reference documents (docs/*.md) that pages cite, and Markdown as HTML for the pages."""
from __future__ import annotations

from django.conf import settings
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

DOCUMENTS = {"model-contract": "Model contract", "rules": "Rule catalogue",
             "agreement-references": "Agreement references"}


def markdown_html(text: str) -> SafeString:
    """CommonMark with tables; raw HTML in the text is escaped, never passed through."""
    return mark_safe(MarkdownIt("commonmark", {"html": False}).enable("table").render(text))


def document(name: str) -> tuple[str, SafeString]:
    """The title and HTML of docs/<name>.md; KeyError for a name that is not one of DOCUMENTS."""
    title = DOCUMENTS[name]
    return title, markdown_html((settings.BASE_DIR / "docs" / f"{name}.md").read_text(encoding="utf-8"))
