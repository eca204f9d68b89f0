"""Site configuration: one YAML file validated into immutable, typed objects."""

from cems.config.loader import load_site, load_site_text
from cems.config.model import SiteConfig
from cems.config.summary import summarize

__all__ = ["SiteConfig", "load_site", "load_site_text", "summarize"]
