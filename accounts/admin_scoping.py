"""The admin's tenancy, shared by every app's admin: a row the user may not see on the pages does not exist
in the admin either, whichever door is used.

- Lists, searches, actions, autocomplete, change, delete and both history views read through
  ``get_queryset``, scoped by ``accounts.selectors.scope_of``; an object outside it answers 404.
- Every foreign key and many-to-many form field (in forms, inlines and the history form) offers and
  accepts only rows of the user's scope: a posted id of another partner's row is a field error.
- List filters on links to partner-owned rows offer only the values the user's rows hold.
- Writes go through services (``save_with_services``); a service's refusal is shown on the form, as a
  field error where it names a field, and nothing is saved.
"""

from collections.abc import Callable, Collection
from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import NON_FIELD_ERRORS, FieldDoesNotExist, PermissionDenied, ValidationError
from django.db.models import Model, QuerySet
from django.forms import BaseForm
from django.http import Http404, HttpRequest, HttpResponse

from accounts import selectors
from accounts.models import User
from accounts.security import signed_in_user


def _scoped_choices(request: HttpRequest, model: type[Model], queryset: QuerySet[Any] | None) -> Any:
    scope = selectors.scope_of(request.user, model)
    if scope is None:
        return queryset
    base = queryset if queryset is not None else model._default_manager.all()
    return base.filter(scope)


class ScopedFormFieldsMixin:
    """Form fields linking to partner-owned rows offer and accept only the user's (admins and inlines)."""

    def _scope_link(self, db_field: Any, request: HttpRequest, kwargs: dict[str, Any]) -> None:
        queryset = kwargs.get("queryset")
        if queryset is None:
            queryset = self.get_field_queryset(None, db_field, request)  # type: ignore[attr-defined]
        scoped = _scoped_choices(request, db_field.related_model, queryset)
        if scoped is not None:
            kwargs["queryset"] = scoped

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        self._scope_link(db_field, request, kwargs)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)  # type: ignore[misc]

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        self._scope_link(db_field, request, kwargs)
        return super().formfield_for_manytomany(db_field, request, **kwargs)  # type: ignore[misc]


class ScopedInline(ScopedFormFieldsMixin, admin.TabularInline):
    """An inline whose link fields are scoped like its admin's."""


class ServiceRefusal(Exception):
    """A service refused an admin write (its ValidationError); the admin shows the form again."""

    def __init__(self, error: ValidationError) -> None:
        super().__init__(error)
        self.error = error


_REFUSAL_ATTRIBUTE = "_admin_service_refusal"


def _add_refusal(form: BaseForm, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for name, errors in error.error_dict.items():
            if name in form.fields or name == NON_FIELD_ERRORS:
                form.add_error(None if name == NON_FIELD_ERRORS else name, errors)
            else:
                form.add_error(
                    None, [f"{name.replace('_', ' ')}: {message}" for e in errors for message in e]
                )
    else:
        form.add_error(None, error.messages)


class TenantScopedAdmin(ScopedFormFieldsMixin, admin.ModelAdmin):
    """The base of every admin of this project (see the module docstring)."""

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        scope = selectors.scope_of(request.user, self.model)
        return queryset if scope is None else queryset.filter(scope)

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Any:
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404("No such object.")
        return obj

    def get_list_filter(self, request: HttpRequest) -> Any:
        scoped: list[Any] = []
        for entry in super().get_list_filter(request):
            field = _relation_field(self.model, entry) if isinstance(entry, str) else None
            if field is not None and selectors.is_partner_owned(field.related_model):
                scoped.append((entry, admin.RelatedOnlyFieldListFilter))
            else:
                scoped.append(entry)
        return scoped

    def history_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> HttpResponse:
        # simple-history shows the history rows of objects outside the queryset; here they do not exist.
        self.get_object(request, unquote(object_id))
        return super().history_view(request, object_id, extra_context)

    def history_form_view(
        self, request: HttpRequest, object_id: str, version_id: str, extra_context: Any = None
    ) -> HttpResponse:
        obj = self.get_object(request, unquote(object_id))
        # simple-history saves a posted past version ("revert") for anyone who may view the history.
        if request.method == "POST" and not self.has_change_permission(request, obj):
            raise PermissionDenied
        try:
            return super().history_form_view(request, object_id, version_id, extra_context)  # type: ignore[misc]
        except ServiceRefusal as refusal:
            setattr(request, _REFUSAL_ATTRIBUTE, refusal.error)
            return super().history_form_view(request, object_id, version_id, extra_context)  # type: ignore[misc]

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: Any = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ServiceRefusal as refusal:
            # The refused write's transaction has rolled back; the same POST is validated again, and
            # this time the form carries the service's errors, so the page shows them and saves nothing.
            setattr(request, _REFUSAL_ATTRIBUTE, refusal.error)
            return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form_class = super().get_form(request, obj, change=change, **kwargs)
        found: ValidationError | None = getattr(request, _REFUSAL_ATTRIBUTE, None)
        if found is None:
            return form_class
        refusal = found

        class RefusedForm(form_class):  # type: ignore[valid-type,misc]
            def _post_clean(self) -> None:
                super()._post_clean()
                _add_refusal(self, refusal)

        RefusedForm.__name__ = form_class.__name__
        return RefusedForm

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        try:
            self.save_with_services(request, obj, form, change)
        except ValidationError as exc:
            raise ServiceRefusal(exc) from exc

    def save_with_services(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """Save through the app's services; admins of models without one save the form's instance."""
        super().save_model(request, obj, form, change)


class UpdatedByServiceMixin:
    """An admin whose change form saves through the model's ``*_update`` service: ``update_service``
    takes the row as ``updated_as`` and the fields the form changed, of ``editable_fields``. An added row
    is saved by ``create_with_service``. Put before the admin class in the bases."""

    update_service: Callable[..., Any]
    updated_as: str  # the keyword the update service takes the row by
    editable_fields: tuple[str, ...]

    def save_with_services(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        actor = signed_in_user(request)
        if change:
            current = type(obj).objects.get(pk=obj.pk)
            saved = self.update_service(
                actor=actor,
                **{self.updated_as: current},
                **changed_fields(form, current, editable=self.editable_fields),
            )
        else:
            saved = self.create_with_service(obj, form, actor)
        copy_saved(saved, obj)

    def create_with_service(self, obj: Any, form: Any, actor: User) -> Model:
        raise NotImplementedError


def changed_fields(form: Any, current: Model, *, editable: Collection[str]) -> dict[str, Any]:
    """The form's values that differ from the row as it is now: what an ``*_update`` service takes.
    Compared with the row, not the form's initial values: a reverted past version differs from the row
    though its form, which starts from that version, saw no change. A changed field the service does not
    edit (``editable``) is refused by name, as the service's own checks are."""
    changes: dict[str, Any] = {}
    for name, value in form.cleaned_data.items():
        try:
            field = current._meta.get_field(name)
        except FieldDoesNotExist:
            continue
        if field.concrete and not field.many_to_many and getattr(current, name) != value:
            changes[name] = value
    refused = sorted(set(changes) - set(editable))
    if refused:
        raise ValidationError({name: "This field cannot be changed here." for name in refused})
    return changes


def copy_saved(saved: Model, onto: Model) -> None:
    """Give the admin's instance the row the service saved (its id, normalised values), for the change
    message and the redirect that follow."""
    for field in saved._meta.concrete_fields:
        setattr(onto, field.attname, getattr(saved, field.attname))
    onto._state.adding = False


def _relation_field(model: type[Model], name: str) -> Any:
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:  # a lookup through a relation ("customer__partner"): left as it is
        return None
    return field if field.is_relation and field.related_model is not None else None
