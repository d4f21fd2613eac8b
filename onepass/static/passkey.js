// Passkey ceremonies of 1pass's pages (WebAuthn). A form marked data-passkey carries
// the options (data-options, JSON with base64url fields) and a hidden "credential"
// field; on submit the browser runs the ceremony, the answer goes into the field as
// JSON, and the form is posted. The server checks everything: this file only moves
// bytes between the page and the authenticator. Forms are hidden until this runs and
// finds WebAuthn, so a browser without it sees only the other ways to sign in.
(function () {
  "use strict";

  function bytes(text) {
    var base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    var raw = atob(base64 + "===".slice((base64.length + 3) % 4));
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out.buffer;
  }

  function text(buffer) {
    var view = new Uint8Array(buffer);
    var raw = "";
    for (var i = 0; i < view.length; i++) raw += String.fromCharCode(view[i]);
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (d) {
      return { type: d.type, id: bytes(d.id), transports: d.transports };
    });
  }

  function creation(options) {
    options.challenge = bytes(options.challenge);
    options.user.id = bytes(options.user.id);
    options.excludeCredentials = descriptors(options.excludeCredentials);
    return { publicKey: options };
  }

  function request(options) {
    options.challenge = bytes(options.challenge);
    options.allowCredentials = descriptors(options.allowCredentials);
    return { publicKey: options };
  }

  function answer(credential) {
    var response = credential.response;
    var json = {
      id: credential.id,
      rawId: text(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: { clientDataJSON: text(response.clientDataJSON) },
    };
    if (response.attestationObject) {
      json.response.attestationObject = text(response.attestationObject);
      if (response.getTransports) json.response.transports = response.getTransports();
    } else {
      json.response.authenticatorData = text(response.authenticatorData);
      json.response.signature = text(response.signature);
      if (response.userHandle) json.response.userHandle = text(response.userHandle);
    }
    return JSON.stringify(json);
  }

  function start(form) {
    var field = form.querySelector("input[name=credential]");
    var failed = form.querySelector("[data-passkey-failed]");
    form.hidden = false;
    form.addEventListener("submit", function (event) {
      if (field.value) return;
      event.preventDefault();
      if (failed) failed.hidden = true;
      var options = JSON.parse(form.getAttribute("data-options"));
      var ceremony = form.getAttribute("data-passkey") === "register"
        ? navigator.credentials.create(creation(options))
        : navigator.credentials.get(request(options));
      ceremony.then(function (credential) {
        field.value = answer(credential);
        form.submit();
      }, function () {
        if (failed) failed.hidden = false;
      });
    });
  }

  // The console's "Confirm with a passkey" button: instead of the code, the answer of
  // one of the administrator's passkeys, then the form is sent as it is.
  function stepUp(button) {
    var form = button.form;
    button.hidden = false;
    button.addEventListener("click", function (event) {
      event.preventDefault();
      var options = JSON.parse(button.getAttribute("data-options"));
      navigator.credentials.get(request(options)).then(function (credential) {
        form.querySelector("input[name=step_up_credential]").value = answer(credential);
        form.submit();
      }, function () {});
    });
  }

  if (!window.PublicKeyCredential || !navigator.credentials) return;
  var forms = document.querySelectorAll("form[data-passkey]");
  for (var i = 0; i < forms.length; i++) start(forms[i]);
  var buttons = document.querySelectorAll("button[data-passkey-step-up]");
  for (var j = 0; j < buttons.length; j++) stepUp(buttons[j]);
})();
