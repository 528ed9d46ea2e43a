import type { Page } from 'playwright-core';

/** What a person does on the console's forms, by their labels (every input has one). */
export async function signUp(page: Page, baseUrl: string, email: string, password: string): Promise<void> {
  await page.goto(`${baseUrl}/signup`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign up' }).click();
  await page.waitForURL(`${baseUrl}/keys`);
}

export async function logIn(page: Page, baseUrl: string, email: string, password: string): Promise<void> {
  await page.goto(`${baseUrl}/login`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForLoadState();
}

/** Creates a key on /keys and returns the full key, read from the element that shows it once. */
export async function createKey(page: Page, baseUrl: string, name: string): Promise<string> {
  await page.goto(`${baseUrl}/keys`);
  await page.getByLabel('Name (optional)').fill(name);
  await page.getByRole('button', { name: 'Create key' }).click();
  await page.waitForURL(`${baseUrl}/keys`);
  return (await page.getByTestId('new-key').textContent())?.trim() ?? '';
}
