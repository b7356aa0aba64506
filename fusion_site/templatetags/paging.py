"""``{% load paging %}``: ``{% include "_pages.html" with page=page_obj %}`` draws a list's page links,
and ``{% page_query request page_number %}`` is the current query string with only the page changed,
so a filter or search stays in force from page to page."""

from django import template
from django.http import HttpRequest

register = template.Library()


@register.simple_tag
def page_query(request: HttpRequest, number: int) -> str:
    query = request.GET.copy()
    query["page"] = str(number)
    return "?" + query.urlencode()
